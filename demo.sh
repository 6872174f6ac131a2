#!/usr/bin/env bash
# ./demo.sh — run mfagate in front of the demo dashboard app.
#
# Builds ./caddy (via ./xcaddy.sh) and ./demoapp-bin, starts the demo app on
# 127.0.0.1:9080 and `./caddy run --config Caddyfile.example` (the gateway on
# http://localhost:8080, Caddy's admin API on localhost:2019, state in the
# embedded bbolt default in Caddy's data directory), waits until both answer,
# prints what to try, and runs until Ctrl-C, which stops both.
#
# ./demo.sh reset — forget the demo's state: deletes the gateway's store
# (mfagate/ in Caddy's data directory: users' authenticators, recovery codes,
# sessions, team policy, audit log, identity secret, and the key). The demo
# app keeps nothing on disk.
set -euo pipefail

cd "$(dirname "$0")"

GATEWAY_URL=http://localhost:8080
APP_ADDR=127.0.0.1:9080
# Fixed by Caddyfile.example (site address and `admin`) and the app's -listen.
PORTS=(8080 9080 2019)
PORT_USE=([8080]="the gateway (Caddyfile.example site http://localhost:8080)"
	[9080]="the demo app (127.0.0.1:9080, Caddyfile.example's reverse_proxy upstream)"
	[2019]="Caddy's admin API (Caddyfile.example: admin localhost:2019)")

say() { printf 'demo.sh: %s\n' "$*"; }
die() { printf 'demo.sh: %s\n' "$*" >&2; exit 1; }

# port_busy PORT: something already listens on PORT (any address).
port_busy() {
	local p=$1
	if command -v ss >/dev/null 2>&1 && ss -ltn "sport = :$p" 2>/dev/null | tail -n +2 | grep -q .; then
		return 0
	fi
	(exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null
}

# answers URL: the URL gives any HTTP answer (curl), or its port accepts a
# connection (no curl).
answers() {
	local url=$1
	if command -v curl >/dev/null 2>&1; then
		curl -s -o /dev/null --max-time 2 "$url"
		return
	fi
	local hostport=${url#http://}
	hostport=${hostport%%/*}
	local host=${hostport%:*} port=${hostport##*:}
	[[ $host == localhost ]] && host=127.0.0.1
	(exec 3<>"/dev/tcp/$host/$port") 2>/dev/null
}

# Caddy's data directory, as caddy.AppDataDir() computes it.
data_dir() {
	if [[ -n ${XDG_DATA_HOME:-} ]]; then
		printf '%s/caddy' "$XDG_DATA_HOME"
	elif [[ $(uname -s) == Darwin ]]; then
		printf '%s/Library/Application Support/Caddy' "$HOME"
	else
		printf '%s/.local/share/caddy' "$HOME"
	fi
}

case ${1:-} in
"") ;;
reset)
	if port_busy 2019 || port_busy 8080; then
		die "something listens on 8080 or 2019: stop the demo (Ctrl-C) first, then run ./demo.sh reset again."
	fi
	state="$(data_dir)/mfagate"
	if [[ -e $state ]]; then
		rm -rf -- "$state"
		say "removed $state; the next ./demo.sh starts with no one enrolled."
	else
		say "nothing to reset: $state does not exist."
	fi
	exit 0
	;;
*) die "usage: ./demo.sh [reset]" ;;
esac

command -v go >/dev/null 2>&1 || die "Go is not on PATH; install Go $(awk '/^go /{print $2}' go.mod) or newer."

busy=0
for p in "${PORTS[@]}"; do
	if port_busy "$p"; then
		printf 'demo.sh: port %s is in use; it is needed for %s.\n' "$p" "${PORT_USE[$p]}" >&2
		busy=1
	fi
done
if ((busy)); then
	die "stop whatever listens there (see: ss -ltnp 'sport = :8080 or sport = :9080 or sport = :2019'), then run ./demo.sh again."
fi

say "building ./caddy"
./xcaddy.sh
say "building ./demoapp-bin"
go build -o demoapp-bin ./cmd/demoapp

logs=$(mktemp -d "${TMPDIR:-/tmp}/mfagate-demo.XXXXXX")
app_pid="" caddy_pid=""

stop_all() {
	trap - INT TERM EXIT
	local pid
	for pid in $caddy_pid $app_pid; do
		kill -TERM "$pid" 2>/dev/null || true
	done
	for pid in $caddy_pid $app_pid; do
		wait "$pid" 2>/dev/null || true
	done
	if [[ -n $caddy_pid$app_pid ]]; then
		say "stopped (logs kept in $logs)"
	fi
}
trap 'echo; stop_all; exit 130' INT
trap 'stop_all; exit 143' TERM
trap stop_all EXIT

# wait_for NAME PID URL LOG: until URL answers; fail if PID dies or 30 s pass.
wait_for() {
	local name=$1 pid=$2 url=$3 log=$4 i
	for ((i = 0; i < 150; i++)); do
		if ! kill -0 "$pid" 2>/dev/null; then
			echo "demo.sh: $name exited before it answered; the end of $log:" >&2
			tail -n 25 "$log" >&2 || true
			exit 1
		fi
		if answers "$url"; then
			return 0
		fi
		sleep 0.2
	done
	echo "demo.sh: $name did not answer on $url within 30 s; the end of $log:" >&2
	tail -n 25 "$log" >&2 || true
	exit 1
}

say "starting the demo app on $APP_ADDR"
./demoapp-bin -listen "$APP_ADDR" >"$logs/demoapp.log" 2>&1 &
app_pid=$!
wait_for "the demo app" "$app_pid" "http://$APP_ADDR/healthz" "$logs/demoapp.log"

say "starting Caddy: ./caddy run --config Caddyfile.example"
./caddy run --config Caddyfile.example >"$logs/caddy.log" 2>&1 &
caddy_pid=$!
wait_for "Caddy" "$caddy_pid" "$GATEWAY_URL/healthz" "$logs/caddy.log"

data=$(data_dir)
cat <<MSG

  mfagate is running in front of the demo dashboard app.

  Open:   $GATEWAY_URL/
  Users:  alice / alice-password
          bob   / bob-password
          (admin / admin-password also exists)

  Try it:
    1. Sign in as alice. No second factor is set up yet, so you land on the dashboard.
    2. Follow "Account security" ($GATEWAY_URL/_mfa/security) and click "Enable 2FA": scan the QR code
       (or type the secret) into an authenticator app, enter its 6-digit code,
       save the 10 recovery codes and confirm you saved them.
    3. Sign out ($GATEWAY_URL/logout).
    4. Sign in as alice again: the gateway holds the app's session cookie back and
       sends you to the challenge ($GATEWAY_URL/_mfa/challenge).
    5. Enter the current code from your app: you reach the dashboard (AAL2).
       Or "Use a recovery code": it works once, turns the authenticator off and
       sends you to the security page to set up a new one.
    6. Team admin: sign in as admin / admin-password, set up 2FA on the security page,
       then open $GATEWAY_URL/_mfa/admin (require 2FA, session timeout, members,
       sessions, audit log). Operators: ./caddy mfa users
    7. Widget identity: "Open the support widget" on the dashboard shows the gateway's
       verdict (unverified: verification is Off). As admin, on $GATEWAY_URL/_mfa/admin#identity
       click "Generate identity secret" (Monitor), paste it into the dashboard's
       "Identity secret" form: the widget's claim is now signed and verified.

  JSON API: $GATEWAY_URL/_mfa/api/v1/status (with the browser's mfa_session cookie)
  State:    $data/mfagate/mfagate.db  (key file: $data/mfagate/key)
            to start over: stop, then ./demo.sh reset
  Logs:     $logs/caddy.log
            $logs/demoapp.log

  Press Ctrl-C to stop both.

MSG

# Run until Ctrl-C, or until one of the two exits on its own.
set +e
wait -n "$app_pid" "$caddy_pid"
rc=$?
set -e
for pid in $app_pid $caddy_pid; do
	if ! kill -0 "$pid" 2>/dev/null; then
		name="the demo app" log="$logs/demoapp.log"
		[[ $pid == "$caddy_pid" ]] && name="Caddy" log="$logs/caddy.log"
		echo "demo.sh: $name exited (status $rc); the end of $log:" >&2
		tail -n 25 "$log" >&2 || true
	fi
done
exit 1

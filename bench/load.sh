#!/usr/bin/env bash
# Throughput and CPU cost of mfa_gateway + reverse_proxy against bare
# reverse_proxy (PRODUCT.md "Performance budgets"), on loopback, same run.
#
#   bash bench/load.sh            # 5 interleaved rounds of 5 s each
#   ROUNDS=7 DURATION=10s bash bench/load.sh
#   MODE=side-by-side ROUNDS=5 DURATION=15s bash bench/load.sh
#
# Env: MODE (interleaved, or side-by-side), ROUNDS (5), DURATION (5s), CONNS
# (16), THREADS (1), PATH_UNDER_TEST (/api/data), SERVER_CPUS / CLIENT_CPUS
# (taskset lists, default 0 / 1 on a machine with 2+ cores), KEEP=1 keeps the
# temp dir, CADDY=path uses that binary as it is (default: ./caddy, rebuilt
# when older than the sources).
#
# CONTROL=1 (side-by-side only) starts a second bare Caddy where the gateway
# would be: the ratio it measures is the harness's own floor, what two
# identical Caddys score against each other on this machine.
#
# MODE=side-by-side runs bare and gateway at the same time, both Caddys on
# SERVER_CPUS and both wrk on CLIENT_CPUS, each round: the two share the
# server CPU, so machine-speed drift (other load, a busy host) hits both alike
# and their requests/s ratio is far steadier than interleaved rounds. It
# prints each round and the median and range of the ratio.
#
# What it does: builds ./caddy if missing or older than the sources, builds
# the demo app, starts it and two Caddy instances (bench/Caddyfile.bare and
# bench/Caddyfile.gateway, both proxying to the same app), signs alice in
# through each (gateway: gateway cookie + app cookie, an active AAL1 session
# since alice is not enrolled; bare: app cookie), then runs ROUNDS rounds of
# wrk, bare and gateway alternating (the order flips every round), against
# GET PATH_UNDER_TEST. Before each gateway round alice signs in afresh so the
# gateway cookie is never old enough (> 1 min) to be re-stamped on every
# request: wrk does not update its cookie the way a browser does.
# Caddy CPU time per request is the utime+stime delta of the Caddy process
# (/proc/<pid>/stat) over a round divided by the requests wrk completed.
set -euo pipefail

MODE=${MODE:-interleaved}
ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-5s}
CONNS=${CONNS:-16}
THREADS=${THREADS:-1}
PATH_UNDER_TEST=${PATH_UNDER_TEST:-/api/data}

cd "$(dirname "$0")/.."
ROOT=$PWD

die() { echo "load.sh: $*" >&2; exit 1; }
for c in go wrk curl awk timeout; do command -v "$c" >/dev/null || die "$c is not on PATH"; done
[[ $MODE == interleaved || $MODE == side-by-side ]] || die "MODE must be interleaved or side-by-side"
CONTROL=${CONTROL:-0}
[[ $CONTROL == 0 || $MODE == side-by-side ]] || die "CONTROL=1 needs MODE=side-by-side"
GW_CONFIG=bench/Caddyfile.gateway
[[ $CONTROL == 0 ]] || GW_CONFIG=bench/Caddyfile.bare
((ROUNDS >= 1 && ROUNDS <= 50)) || die "ROUNDS must be 1 to 50"
WRK_LIMIT=600 # hard bound on one wrk run
if [[ $DURATION =~ ^([0-9]+)s$ ]]; then WRK_LIMIT=$((BASH_REMATCH[1] + 30)); fi

WORK=$(mktemp -d /tmp/mfagate-bench.XXXXXX)
PIDS=()
cleanup() {
	local p
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	if [[ ${KEEP:-0} == 1 ]]; then echo "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- binaries -------------------------------------------------------------
stale=""
if [[ -n ${CADDY:-} ]]; then
	[[ -x $CADDY ]] || die "CADDY=$CADDY is not an executable"
elif [[ ! -x ./caddy ]]; then
	stale="missing"
elif [[ -n $(find . -path ./integration_test -prune -o \( -name '*.go' ! -name '*_test.go' -newer ./caddy -print \) | head -1) ]] ||
	[[ go.mod -nt ./caddy || go.sum -nt ./caddy ]]; then
	stale="older than the sources"
fi
if [[ -n $stale ]]; then
	echo "building ./caddy ($stale)..."
	go build -o "$WORK/caddy.new" ./cmd/caddy
	mv -f "$WORK/caddy.new" ./caddy # rename: safe while another ./caddy runs
fi
go build -o "$WORK/demoapp" ./cmd/demoapp

source "$(dirname "$0")/lib.sh"

APP_PORT=$(pick_port)
BARE_PORT=$(pick_port)
GW_PORT=$(pick_port)

# --- processes ------------------------------------------------------------
"${PIN_CLIENT[@]}" "$WORK/demoapp" -listen "127.0.0.1:$APP_PORT" >"$WORK/demoapp.log" 2>&1 &
PIDS+=($!)
APP_PID=$!

start_caddy bare "$BARE_PORT" bench/Caddyfile.bare
BARE_PID=$CADDY_PID
start_caddy gateway "$GW_PORT" "$GW_CONFIG"
GW_PID=$CADDY_PID

wait_http "http://127.0.0.1:$APP_PORT/login" || die "demo app did not start: $(cat "$WORK/demoapp.log")"
wait_http "http://127.0.0.1:$BARE_PORT/login" || die "bare caddy did not start: $(cat "$WORK/bare/caddy.log")"
wait_http "http://127.0.0.1:$GW_PORT/login" || die "gateway caddy did not start: $(cat "$WORK/gateway/caddy.log")"

# --- sign-in --------------------------------------------------------------
cookie_of() { # jar name
	awk -v n="$2" '!/^#/ || /^#HttpOnly_/ { if ($6 == n) v = $7 } END { print v }' "$1"
}
sign_in() { # port jar -> Cookie header value for wrk
	rm -f "$2"
	curl -s -o /dev/null -c "$2" -b "$2" --max-time 5 \
		--data 'username=alice&password=alice-password' "http://127.0.0.1:$1/login"
}
check_200() { # port cookie
	local code
	code=$(curl -s -o "$WORK/check.body" -w '%{http_code}' --max-time 5 -H "Cookie: $2" "http://127.0.0.1:$1$PATH_UNDER_TEST")
	[[ $code == 200 ]] || die "GET $PATH_UNDER_TEST on :$1 answered $code: $(head -c 300 "$WORK/check.body")"
	grep -q alice "$WORK/check.body" || die "GET $PATH_UNDER_TEST on :$1 is not alice's: $(head -c 300 "$WORK/check.body")"
}

sign_in "$BARE_PORT" "$WORK/bare.jar"
BARE_COOKIE="demo_session=$(cookie_of "$WORK/bare.jar" demo_session)"
[[ $BARE_COOKIE != "demo_session=" ]] || die "no app cookie from the bare sign-in"
check_200 "$BARE_PORT" "$BARE_COOKIE"

gateway_cookie() {
	local gw app
	if [[ $CONTROL == 1 ]]; then # a bare Caddy: the app cookie alone
		sign_in "$GW_PORT" "$WORK/gw.jar"
		GW_COOKIE="demo_session=$(cookie_of "$WORK/gw.jar" demo_session)"
		check_200 "$GW_PORT" "$GW_COOKIE"
		return
	fi
	sign_in "$GW_PORT" "$WORK/gw.jar"
	gw=$(cookie_of "$WORK/gw.jar" mfa_session)
	app=$(cookie_of "$WORK/gw.jar" demo_session)
	[[ -n $gw && -n $app ]] || die "gateway sign-in gave no cookies: $(cat "$WORK/gw.jar")"
	GW_COOKIE="mfa_session=$gw; demo_session=$app"
	check_200 "$GW_PORT" "$GW_COOKIE"
	# The app cookie alone must not pass the gateway.
	local code
	code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 -H "Cookie: demo_session=$app" "http://127.0.0.1:$GW_PORT$PATH_UNDER_TEST")
	[[ $code == 401 ]] || die "gateway forwarded the app cookie without its gateway cookie ($code)"
}
gateway_cookie

# --- measurement ----------------------------------------------------------
run_wrk() { # port cookie duration -> "requests rps non2xx"
	local out
	out=$("${PIN_CLIENT[@]}" timeout "$WRK_LIMIT" wrk -t"$THREADS" -c"$CONNS" -d"$3" --timeout 2s \
		-H "Cookie: $2" "http://127.0.0.1:$1$PATH_UNDER_TEST")
	echo "$out" >>"$WORK/wrk.log"
	awk '/requests in/ {req=$1} /^Requests\/sec/ {rps=$2} /Non-2xx/ {bad=$NF} /Socket errors/ {err=1}
		END {print req+0, rps+0, bad+0, err+0}' <<<"$out"
}

measure() { # name port cookie pid -> appends "name round rps cpu_us app_cpu_us" to results
	local c0 a0 c1 a1 req rps bad err
	c0=$(cpu_ticks "$4")
	a0=$(cpu_ticks "$APP_PID")
	read -r req rps bad err < <(run_wrk "$2" "$3" "$DURATION")
	c1=$(cpu_ticks "$4")
	a1=$(cpu_ticks "$APP_PID")
	((req > 0)) || die "$1: wrk completed no requests"
	((bad == 0)) || echo "  warning: $1 round $ROUND: $bad non-2xx responses" >&2
	((err == 0)) || echo "  warning: $1 round $ROUND: socket errors (see $WORK/wrk.log, KEEP=1)" >&2
	awk -v n="$1" -v r="$ROUND" -v rps="$rps" -v req="$req" -v dc="$((c1 - c0))" -v da="$((a1 - a0))" -v hz="$CLK_TCK" \
		'BEGIN { printf "%s %d %.0f %.2f %.2f\n", n, r, rps, dc / hz * 1e6 / req, da / hz * 1e6 / req }' >>"$WORK/results"
}

if [[ $MODE == side-by-side ]]; then
	echo "mfagate load comparison, side by side: $ROUNDS rounds of bare and gateway at once, wrk -t$THREADS -c$CONNS -d$DURATION GET $PATH_UNDER_TEST each"
	[[ $CONTROL == 0 ]] || echo "CONTROL=1: the \"gateway\" column is a second bare Caddy"
	echo "placement: $PLACEMENT (both Caddys share the server CPU); load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
	wrk_bare() { run_wrk "$BARE_PORT" "$BARE_COOKIE" "${DUR:-$DURATION}"; }
	wrk_gw() { run_wrk "$GW_PORT" "$GW_COOKIE" "${DUR:-$DURATION}"; }
	echo "warming up..."
	ROUND=0 DUR=2s side_round warmup "$BARE_PID" "$GW_PID" wrk_bare wrk_gw
	: >"$WORK/side"
	for ((ROUND = 1; ROUND <= ROUNDS; ROUND++)); do
		gateway_cookie # fresh session: no per-request re-stamp during the round
		side_round pass-through "$BARE_PID" "$GW_PID" wrk_bare wrk_gw
	done
	side_report pass-through 0.97
	echo "placement: $PLACEMENT; load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
	echo "CPU time from /proc/<pid>/stat utime+stime (1/$CLK_TCK s ticks) over each round / requests completed"
	exit 0
fi

echo "mfagate load comparison: $ROUNDS rounds x (bare, gateway), wrk -t$THREADS -c$CONNS -d$DURATION GET $PATH_UNDER_TEST"
echo "placement: $PLACEMENT; load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "warming up..."
run_wrk "$BARE_PORT" "$BARE_COOKIE" 2s >/dev/null
run_wrk "$GW_PORT" "$GW_COOKIE" 2s >/dev/null

: >"$WORK/results"
for ((ROUND = 1; ROUND <= ROUNDS; ROUND++)); do
	gateway_cookie # fresh session: no per-request re-stamp during the round
	if ((ROUND % 2)); then
		measure bare "$BARE_PORT" "$BARE_COOKIE" "$BARE_PID"
		measure gateway "$GW_PORT" "$GW_COOKIE" "$GW_PID"
	else
		measure gateway "$GW_PORT" "$GW_COOKIE" "$GW_PID"
		measure bare "$BARE_PORT" "$BARE_COOKIE" "$BARE_PID"
	fi
done

# --- report ---------------------------------------------------------------
awk '
function median(a, n,   i, j, t) {
	for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
	return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
{ r = $2; rounds = r > rounds ? r : rounds; rps[$1, r] = $3; cpu[$1, r] = $4; app[$1, r] = $5 }
END {
	printf "\n%-6s %14s %14s %8s %14s %14s\n", "round", "bare req/s", "gateway req/s", "ratio", "bare CPU us/r", "gw CPU us/r"
	for (r = 1; r <= rounds; r++) {
		printf "%-6d %14.0f %14.0f %8.3f %14.1f %14.1f\n", r, rps["bare", r], rps["gateway", r],
			rps["gateway", r] / rps["bare", r], cpu["bare", r], cpu["gateway", r]
		br[r] = rps["bare", r]; gr[r] = rps["gateway", r]; rr[r] = rps["gateway", r] / rps["bare", r]
		bc[r] = cpu["bare", r]; gc[r] = cpu["gateway", r]; dc[r] = cpu["gateway", r] - cpu["bare", r]
		ba[r] = app["bare", r]; ga[r] = app["gateway", r]
	}
	mb = median(br, rounds); mg = median(gr, rounds); mr = median(rr, rounds)
	mbc = median(bc, rounds); mgc = median(gc, rounds); mdc = median(dc, rounds)
	printf "%-6s %14.0f %14.0f %8.3f %14.1f %14.1f\n", "median", mb, mg, mr, mbc, mgc
	printf "\nthroughput ratio gateway/bare: %.3f (medians), %.3f (median of per-round ratios); target >= 0.97\n", mg / mb, mr
	printf "Caddy CPU per request: bare %.1f us, gateway %.1f us, added %.1f us (%.1f%%; median per-round delta %.1f us)\n",
		mbc, mgc, mgc - mbc, (mgc - mbc) / mbc * 100, mdc
	printf "demo app CPU per request (same upstream, for reference): bare %.1f us, gateway %.1f us\n", median(ba, rounds), median(ga, rounds)
}' "$WORK/results"
echo "placement: $PLACEMENT; load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "CPU time from /proc/<pid>/stat utime+stime (1/$CLK_TCK s ticks) over each round / requests completed"

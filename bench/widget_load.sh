#!/usr/bin/env bash
# Widget traffic in Enforce mode through mfa_gateway + reverse_proxy against
# bare reverse_proxy (issue 5, "Performance"), on loopback, same run:
#
#   (a) reuse: every request carries the same valid token (a widget sends
#       its token until it expires): target >= 0.97 of bare requests/s;
#   (b) fresh: every request carries a token never sent before (wrk Lua
#       script cycling through TOKENS pre-minted tokens): target >= 0.93.
#
#   bash bench/widget_load.sh              # 5 interleaved rounds of 5 s
#   ROUNDS=7 DURATION=10s bash bench/widget_load.sh
#   MODE=side-by-side ROUNDS=5 DURATION=15s bash bench/widget_load.sh
#
# MODE=side-by-side runs bare and gateway at the same time in each round
# (both Caddys on SERVER_CPUS, both wrk on CLIENT_CPUS), as bench/load.sh
# does: machine-speed drift hits both alike, and the median and range of the
# per-round ratio are printed for reuse and for fresh tokens.
#
# Env: MODE (interleaved, or side-by-side), ROUNDS (5), DURATION (5s, whole
# seconds), CONNS (16), THREADS (1),
# TOKENS (500000; must exceed the gateway's fresh-token requests over the
# whole run, the script says so if they ran out), SERVER_CPUS / CLIENT_CPUS
# (taskset lists, default 0 / 1 on a machine with 2+ cores), KEEP=1 keeps
# the temp dir, CADDY=path uses that binary as it is.
#
# What it does: uses ./caddy if it is newer than the sources (else builds
# one into the temp dir; the work tree is not touched), builds the demo app
# and bench/mint, starts the app and two Caddy instances
# (bench/widget-bare.Caddyfile, bench/widget-gateway.Caddyfile: same
# upstream; the gateway's widget block matches /healthz, the demo app's
# smallest answer). bench/mint then does what an admin and a customer's
# backend would: signs the admin in, turns TOTP on through the API (codes
# computed by the program), generates the identity secret, sends one
# verified widget request so the enforce gate opens, switches to Enforce,
# checks that Enforce refuses a wrong and a missing token, and mints the
# tokens. Then ROUNDS rounds of reuse (bare and gateway, the order flipped
# every round), then ROUNDS rounds of fresh the same way, each a run of wrk
# GET /healthz with X-Widget-User-Id and Authorization: Bearer. The fresh
# rounds of the gateway never reuse a token across rounds (the Lua script
# reports where it stopped, the next round starts there). The bare instance
# runs the same wrk script so that the client does the same work.
# Caddy CPU per request is the utime+stime delta of the Caddy process
# (/proc/<pid>/stat) over a round divided by the requests wrk completed.
# Everything listens on 127.0.0.1; every process started is killed on exit.
set -euo pipefail

MODE=${MODE:-interleaved}
ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-5s}
CONNS=${CONNS:-16}
THREADS=${THREADS:-1}
TOKENS=${TOKENS:-500000}
WIDGET_PATH=/healthz # matched by the widget block of bench/widget-gateway.Caddyfile

cd "$(dirname "$0")/.."

die() { echo "widget_load.sh: $*" >&2; exit 1; }
for c in go wrk curl awk timeout; do command -v "$c" >/dev/null || die "$c is not on PATH"; done
[[ $DURATION =~ ^[0-9]+s$ ]] || die "DURATION must be whole seconds, like 5s"
((TOKENS >= 100000)) || die "TOKENS must be at least 100000"
[[ $MODE == interleaved || $MODE == side-by-side ]] || die "MODE must be interleaved or side-by-side"
((ROUNDS >= 1 && ROUNDS <= 50)) || die "ROUNDS must be 1 to 50"
WRK_LIMIT=$((${DURATION%s} + 60)) # hard bound on one wrk run (token loading included)

WORK=$(mktemp -d /tmp/mfagate-widget-bench.XXXXXX)
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
if [[ -z ${CADDY:-} ]]; then
	CADDY=./caddy
	if [[ ! -x ./caddy ]] ||
		[[ -n $(find . -path ./integration_test -prune -o \( -name '*.go' ! -name '*_test.go' ! -path './bench/*' -newer ./caddy -print \) | head -1) ]] ||
		[[ go.mod -nt ./caddy || go.sum -nt ./caddy ]]; then
		echo "building caddy into $WORK (./caddy is missing or older than the sources)..."
		timeout 600 go build -o "$WORK/caddy" ./cmd/caddy
		CADDY=$WORK/caddy
	fi
fi
[[ -x $CADDY ]] || die "CADDY=$CADDY is not an executable"
timeout 300 go build -o "$WORK/demoapp" ./cmd/demoapp
timeout 300 go build -o "$WORK/mint" ./bench/mint

source "$(dirname "$0")/lib.sh"

APP_PORT=$(pick_port)
BARE_PORT=$(pick_port)
GW_PORT=$(pick_port)

# --- processes ------------------------------------------------------------
"${PIN_CLIENT[@]}" "$WORK/demoapp" -listen "127.0.0.1:$APP_PORT" >"$WORK/demoapp.log" 2>&1 &
PIDS+=($!)
APP_PID=$!

start_caddy bare "$BARE_PORT" bench/widget-bare.Caddyfile
BARE_PID=$CADDY_PID
start_caddy gateway "$GW_PORT" bench/widget-gateway.Caddyfile
GW_PID=$CADDY_PID

wait_http "http://127.0.0.1:$APP_PORT/healthz" || die "demo app did not start: $(cat "$WORK/demoapp.log")"
wait_http "http://127.0.0.1:$BARE_PORT/healthz" || die "bare caddy did not start: $(cat "$WORK/bare/caddy.log")"
wait_http "http://127.0.0.1:$GW_PORT/healthz" || die "gateway caddy did not start: $(cat "$WORK/gateway/caddy.log")"

# --- Enforce on, tokens minted ----------------------------------------------
echo "setting up the gateway and minting $TOKENS tokens..."
timeout 300 "$WORK/mint" -base "http://127.0.0.1:$GW_PORT" -widget-path "$WIDGET_PATH" \
	-n "$TOKENS" -out "$WORK/tokens.txt" >"$WORK/mint.out" 2>"$WORK/mint.err" ||
	die "bench/mint failed: $(cat "$WORK/mint.err")"
kv() { awk -F= -v k="$1" '$1 == k { sub(/^[^=]*=/, ""); print }' "$WORK/mint.out"; }
WUSER=$(kv user)
REUSE_TOKEN=$(kv reuse_token)
[[ -n $WUSER && -n $REUSE_TOKEN && $(kv tokens) == "$TOKENS" ]] || die "bench/mint printed: $(cat "$WORK/mint.out")"
[[ $(wc -l <"$WORK/tokens.txt") == "$TOKENS" ]] || die "tokens file has $(wc -l <"$WORK/tokens.txt") lines"

status_of() { # port token user
	curl -s -o /dev/null -w '%{http_code}' --max-time 5 -H "X-Widget-User-Id: $3" -H "Authorization: Bearer $2" \
		"http://127.0.0.1:$1$WIDGET_PATH"
}
[[ $(status_of "$BARE_PORT" "$REUSE_TOKEN" "$WUSER") == 200 ]] || die "bare: the widget request is not 200"
[[ $(status_of "$GW_PORT" "$REUSE_TOKEN" "$WUSER") == 200 ]] || die "gateway: the reuse token is not accepted"
[[ $(status_of "$GW_PORT" "$REUSE_TOKEN" "someone-else") == 403 ]] || die "gateway: not in Enforce (a user mismatch passed)"
[[ $(status_of "$GW_PORT" "$(head -1 "$WORK/tokens.txt")" "$WUSER") == 200 ]] || die "gateway: a minted token is not accepted"

# The fresh-token client: thread k of n sends tokens base+k, base+k+n, ...;
# done() prints the first index no thread has used, and whether any wrapped.
cat >"$WORK/fresh.lua" <<'LUA'
local threads = {}
function setup(thread)
	thread:set("tid", #threads)
	table.insert(threads, thread)
end
function init(args)
	toks = {}
	for line in io.lines(args[1]) do toks[#toks + 1] = line end
	n = #toks
	nthreads = tonumber(args[4])
	i = tonumber(args[2]) + tid
	wrapped = 0
	hdrs = { ["X-Widget-User-Id"] = args[3], ["Authorization"] = "" }
end
function request()
	if i >= n then
		i = i % n
		wrapped = 1
	end
	hdrs["Authorization"] = "Bearer " .. toks[i + 1]
	i = i + nthreads
	return wrk.format("GET", wrk.path, hdrs)
end
function done(summary, latency, requests)
	local next, w = 0, 0
	for _, t in ipairs(threads) do
		if t:get("i") > next then next = t:get("i") end
		if t:get("wrapped") == 1 then w = 1 end
	end
	io.write(string.format("next_index %d wrapped %d\n", next, w))
end
LUA

# --- measurement ----------------------------------------------------------
NEXT_GW=0   # first token index the gateway has not seen
NEXT_BARE=0 # the bare instance does not verify: it may cycle

run_wrk() { # kind port duration [base] -> "requests rps non2xx sockerr next wrapped"
	local out args=()
	if [[ $1 == fresh ]]; then
		args=(-s "$WORK/fresh.lua" "http://127.0.0.1:$2$WIDGET_PATH" -- "$WORK/tokens.txt" "$4" "$WUSER" "$THREADS")
	else
		args=(-H "X-Widget-User-Id: $WUSER" -H "Authorization: Bearer $REUSE_TOKEN" "http://127.0.0.1:$2$WIDGET_PATH")
	fi
	out=$("${PIN_CLIENT[@]}" timeout "$WRK_LIMIT" wrk -t"$THREADS" -c"$CONNS" -d"$3" --timeout 2s "${args[@]}")
	echo "$out" >>"$WORK/wrk.log"
	awk '/requests in/ {req=$1} /^Requests\/sec/ {rps=$2} /Non-2xx/ {bad=$NF} /Socket errors/ {err=1}
		/^next_index/ {nx=$2; wr=$4}
		END {print req+0, rps+0, bad+0, err+0, nx+0, wr+0}' <<<"$out"
}

measure() { # kind name port pid -> appends "kind-name round rps cpu_us app_cpu_us" to results
	local c0 a0 c1 a1 req rps bad err nx wr base=0
	if [[ $1 == fresh && $2 == gateway ]]; then base=$NEXT_GW; fi
	if [[ $1 == fresh && $2 == bare ]]; then base=$NEXT_BARE; fi
	c0=$(cpu_ticks "$4")
	a0=$(cpu_ticks "$APP_PID")
	read -r req rps bad err nx wr < <(run_wrk "$1" "$3" "${DUR:-$DURATION}" "$base")
	c1=$(cpu_ticks "$4")
	a1=$(cpu_ticks "$APP_PID")
	((req > 0)) || die "$1 $2: wrk completed no requests"
	((bad == 0)) || echo "  warning: $1 $2 round $ROUND: $bad non-2xx responses (a 403 in Enforce means a token was refused)" >&2
	((err == 0)) || echo "  warning: $1 $2 round $ROUND: socket errors (see $WORK/wrk.log, KEEP=1)" >&2
	if [[ $1 == fresh && $2 == gateway ]]; then
		((wr == 0)) || echo "  warning: round $ROUND: the gateway's fresh tokens ran out and were reused (raise TOKENS)" >&2
		NEXT_GW=$nx
	fi
	if [[ $1 == fresh && $2 == bare ]]; then NEXT_BARE=$((nx % TOKENS)); fi
	awk -v n="$1-$2" -v r="$ROUND" -v rps="$rps" -v req="$req" -v dc="$((c1 - c0))" -v da="$((a1 - a0))" -v hz="$CLK_TCK" \
		'BEGIN { printf "%s %d %.0f %.2f %.2f\n", n, r, rps, dc / hz * 1e6 / req, da / hz * 1e6 / req }' >>"$WORK/results"
}

pair() { # kind
	if ((ROUND % 2)); then
		measure "$1" bare "$BARE_PORT" "$BARE_PID"
		measure "$1" gateway "$GW_PORT" "$GW_PID"
	else
		measure "$1" gateway "$GW_PORT" "$GW_PID"
		measure "$1" bare "$BARE_PORT" "$BARE_PID"
	fi
}

if [[ $MODE == side-by-side ]]; then
	echo "mfagate widget load comparison (Enforce), side by side: $ROUNDS rounds x (reuse, fresh) of bare and gateway at once, wrk -t$THREADS -c$CONNS -d$DURATION GET $WIDGET_PATH each; $TOKENS fresh tokens"
	echo "placement: $PLACEMENT (both Caddys share the server CPU); load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
	side_bare() { run_wrk "$KIND" "$BARE_PORT" "${DUR:-$DURATION}" "$NEXT_BARE"; }
	side_gw() { run_wrk "$KIND" "$GW_PORT" "${DUR:-$DURATION}" "$NEXT_GW"; }
	next_tokens() { # after a fresh round: where each side's tokens go on
		local nx wr
		read -r _ _ _ _ nx wr <"$WORK/side.gw"
		((wr == 0)) || echo "  warning: round $ROUND: the gateway's fresh tokens ran out and were reused (raise TOKENS)" >&2
		NEXT_GW=$nx
		read -r _ _ _ _ nx _ <"$WORK/side.bare"
		NEXT_BARE=$((nx % TOKENS))
	}
	: >"$WORK/side"
	# Reuse rounds first, for the reason given below for the interleaved mode.
	for KIND in reuse fresh; do
		echo "warming up ($KIND)..."
		ROUND=0 DUR=2s side_round "warmup-$KIND" "$BARE_PID" "$GW_PID" side_bare side_gw
		if [[ $KIND == fresh ]]; then next_tokens; fi
		for ((ROUND = 1; ROUND <= ROUNDS; ROUND++)); do
			side_round "$KIND" "$BARE_PID" "$GW_PID" side_bare side_gw
			if [[ $KIND == fresh ]]; then next_tokens; fi
		done
	done
	side_report reuse 0.97
	side_report fresh 0.93
	echo
	echo "Caddy RSS at the end: bare $(awk '/^VmRSS/ {printf "%.0f MB", $2 / 1024}' "/proc/$BARE_PID/status"), gateway $(awk '/^VmRSS/ {printf "%.0f MB", $2 / 1024}' "/proc/$GW_PID/status")"
	echo "gateway fresh tokens used: $NEXT_GW of $TOKENS (no token sent twice to the gateway unless warned above)"
	echo "placement: $PLACEMENT; load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
	echo "CPU time from /proc/<pid>/stat utime+stime (1/$CLK_TCK s ticks) over each round / requests completed"
	exit 0
fi

echo "mfagate widget load comparison (Enforce): $ROUNDS rounds x (reuse, fresh) x (bare, gateway), wrk -t$THREADS -c$CONNS -d$DURATION GET $WIDGET_PATH; $TOKENS fresh tokens"
echo "placement: $PLACEMENT; load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
# The reuse rounds all run before the fresh ones: the fresh rounds fill the
# gateway's token cache (tens of MB of live heap), and a larger live heap
# makes Go's GC run less often, which would flatter the gateway in reuse
# rounds that came after them.
: >"$WORK/results.all"
for KIND in reuse fresh; do
	echo "warming up ($KIND)..."
	ROUND=0 DUR=2s
	: >"$WORK/results"
	measure "$KIND" bare "$BARE_PORT" "$BARE_PID"
	measure "$KIND" gateway "$GW_PORT" "$GW_PID"
	unset DUR
	: >"$WORK/results"
	for ((ROUND = 1; ROUND <= ROUNDS; ROUND++)); do
		pair "$KIND"
	done
	cat "$WORK/results" >>"$WORK/results.all"
done
mv "$WORK/results.all" "$WORK/results"
rss_mb() { awk '/^VmRSS/ {printf "%.0f MB", $2 / 1024}' "/proc/$1/status"; }
RSS="Caddy RSS at the end: bare $(rss_mb "$BARE_PID"), gateway $(rss_mb "$GW_PID")"

# --- report ---------------------------------------------------------------
report() { # kind target
	awk -v kind="$1" -v target="$2" '
function median(a, n,   i, j, t) {
	for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
	return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
{ split($1, k, "-"); if (k[1] != kind) next; r = $2; rounds = r > rounds ? r : rounds; rps[k[2], r] = $3; cpu[k[2], r] = $4; app[k[2], r] = $5 }
END {
	printf "\n== %s token ==\n", kind
	printf "%-6s %14s %14s %8s %14s %14s\n", "round", "bare req/s", "gateway req/s", "ratio", "bare CPU us/r", "gw CPU us/r"
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
	printf "throughput ratio gateway/bare: %.3f (medians), %.3f (median of per-round ratios); target >= %s -> %s\n",
		mg / mb, mr, target, (mg / mb >= target ? "met" : "NOT met")
	printf "Caddy CPU per request: bare %.1f us, gateway %.1f us, added %.1f us (%.1f%%; median per-round delta %.1f us)\n",
		mbc, mgc, mgc - mbc, (mgc - mbc) / mbc * 100, mdc
	printf "demo app CPU per request (same upstream, for reference): bare %.1f us, gateway %.1f us\n", median(ba, rounds), median(ga, rounds)
}' "$WORK/results"
}
report reuse 0.97
report fresh 0.93
echo
echo "$RSS"
echo "gateway fresh tokens used: $NEXT_GW of $TOKENS (no token sent twice to the gateway unless warned above)"
echo "placement: $PLACEMENT; load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "CPU time from /proc/<pid>/stat utime+stime (1/$CLK_TCK s ticks) over each round / requests completed"

# Shared by bench/load.sh and bench/widget_load.sh (sourced): CPU placement,
# free loopback ports, waiting for HTTP, starting Caddy. Expects WORK, PIDS
# and die from the caller.

# --- CPU placement --------------------------------------------------------
NCPU=$(nproc)
PIN_SERVER=() PIN_CLIENT=()
if command -v taskset >/dev/null && ((NCPU >= 2)); then
	SERVER_CPUS=${SERVER_CPUS:-0}
	CLIENT_CPUS=${CLIENT_CPUS:-1}
	PIN_SERVER=(taskset -c "$SERVER_CPUS")
	PIN_CLIENT=(taskset -c "$CLIENT_CPUS")
	PLACEMENT="caddy on CPU $SERVER_CPUS; wrk and the demo app on CPU $CLIENT_CPUS (taskset)"
else
	PLACEMENT="not pinned (taskset missing or 1 CPU)"
fi

# --- ports ----------------------------------------------------------------
used_ports() { ss -Hltn 2>/dev/null | awk '{n=split($4,a,":"); print a[n]}'; }
pick_port() {
	local p tries=0
	while ((tries++ < 200)); do
		p=$((20000 + RANDOM % 20000))
		if ! used_ports | grep -qx "$p" && [[ " ${TAKEN:-} " != *" $p "* ]]; then
			TAKEN="${TAKEN:-} $p"
			echo "$p"
			return
		fi
	done
	die "no free port"
}
wait_http() { # url: up to 30 s for any HTTP answer
	local i
	for ((i = 0; i < 300; i++)); do
		curl -s -o /dev/null --max-time 1 "$1" && return 0
		sleep 0.1
	done
	return 1
}

start_caddy() { # name port caddyfile -> sets CADDY_PID
	mkdir -p "$WORK/$1"
	env XDG_CONFIG_HOME="$WORK/$1" XDG_DATA_HOME="$WORK/$1" HOME="$WORK/$1" \
		BENCH_PORT="$2" APP_PORT="$APP_PORT" BENCH_DIR="$WORK/$1" \
		"${PIN_SERVER[@]}" "${CADDY:-./caddy}" run --adapter caddyfile --config "$3" >"$WORK/$1/caddy.log" 2>&1 &
	CADDY_PID=$!
	PIDS+=($CADDY_PID)
}

# --- side-by-side ---------------------------------------------------------
# MODE=side-by-side runs bare and gateway AT THE SAME TIME: both Caddys on
# SERVER_CPUS, both wrk on CLIENT_CPUS. They share the server CPU, so a
# slower or busier machine slows both alike and the ratio of their requests/s
# holds still where sequential rounds swing. Each round appends
# "kind round bare_rps gw_rps bare_cpu_us gw_cpu_us" to $WORK/side.

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
CLK_TCK=$(getconf CLK_TCK)

# side_round KIND BARE_PID GW_PID BARE_CMD GW_CMD: BARE_CMD and GW_CMD are
# function names that run one wrk and print "requests rps non2xx sockerr ...".
side_round() {
	local kind=$1 bp=$2 gp=$3 b0 g0 b1 g1 breq brps bbad berr grq grps gbad gerr
	b0=$(cpu_ticks "$bp")
	g0=$(cpu_ticks "$gp")
	# Which wrk starts first alternates by round: the one started first gets
	# a head start on the shared CPU.
	local w1 w2
	if ((ROUND % 2)); then
		"$4" >"$WORK/side.bare" &
		w1=$!
		"$5" >"$WORK/side.gw" &
		w2=$!
	else
		"$5" >"$WORK/side.gw" &
		w2=$!
		"$4" >"$WORK/side.bare" &
		w1=$!
	fi
	wait "$w1" "$w2"
	b1=$(cpu_ticks "$bp")
	g1=$(cpu_ticks "$gp")
	read -r breq brps bbad berr _ <"$WORK/side.bare"
	read -r grq grps gbad gerr _ <"$WORK/side.gw"
	((breq > 0 && grq > 0)) || die "$kind round $ROUND: wrk completed no requests"
	((bbad == 0 && gbad == 0)) || echo "  warning: $kind round $ROUND: non-2xx responses (bare $bbad, gateway $gbad)" >&2
	((berr == 0 && gerr == 0)) || echo "  warning: $kind round $ROUND: socket errors (KEEP=1 keeps $WORK/wrk.log)" >&2
	awk -v k="$kind" -v r="$ROUND" -v br="$brps" -v gr="$grps" -v bq="$breq" -v gq="$grq" \
		-v bt="$((b1 - b0))" -v gt="$((g1 - g0))" -v hz="$CLK_TCK" \
		'BEGIN { printf "%s %d %.0f %.0f %.2f %.2f\n", k, r, br, gr, bt / hz * 1e6 / bq, gt / hz * 1e6 / gq }' >>"$WORK/side"
}

# side_report KIND TARGET: per-round table, median and range of the ratio.
side_report() {
	awk -v kind="$1" -v target="$2" '
function sort(a, n,   i, j, t) { for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t } }
function median(a, n) { sort(a, n); return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 }
$1 == kind { n++; r[n] = $2; br[n] = $3; gr[n] = $4; bc[n] = $5; gc[n] = $6; q[n] = $4 / $3; d[n] = $6 - $5 }
END {
	if (n == 0) exit
	printf "\n== %s: bare and gateway at the same time ==\n", kind
	printf "%-6s %11s %14s %8s %14s %12s %9s\n", "round", "bare req/s", "gateway req/s", "ratio", "bare CPU us/r", "gw CPU us/r", "added us"
	for (i = 1; i <= n; i++)
		printf "%-6d %11.0f %14.0f %8.3f %14.1f %12.1f %9.1f\n", r[i], br[i], gr[i], q[i], bc[i], gc[i], d[i]
	for (i = 1; i <= n; i++) { qq[i] = q[i]; dd[i] = d[i] }
	m = median(qq, n); lo = qq[1]; hi = qq[n]; md = median(dd, n)
	printf "gateway/bare requests/s: median %.3f, range %.3f-%.3f over %d rounds; target >= %s -> %s\n",
		m, lo, hi, n, target, (m >= target ? "met" : "NOT met")
	printf "added Caddy CPU per request: median %.1f us\n", md
}' "$WORK/side"
}

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

#!/usr/bin/env bash
# Waiting-room throughput against nginx on loopback, in one run on this machine:
#   - nginx (2 workers) serving a fixed 200, GET and POST, as the baseline;
#   - GET /v1/rooms/bench/status with a valid ticket (cookies), as browsers poll;
#   - POST /v1/rooms/bench/join without cookies: a new client and ticket every request;
#   - the gateway's resident memory with 10,000 connections open and polling.
# Same tool (wrk), threads and connections for every pair. Needs nginx, wrk, curl, the local
# PostgreSQL and Redis (see README), and a release build (built if missing).
#
#   benches/waiting_room.sh            # DURATION=10s CONNECTIONS=64 by default
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=2
NGINX_PORT=18080
GATEWAY_PORT=18081
BIN=target/release/drawbridge
ADMIN_TOKEN="development-only-admin-token-not-a-secret" # from deploy/local.toml
PREFIX="bench-$(date +%s)"
WORK=$(mktemp -d)
GATEWAY_URL="http://127.0.0.1:$GATEWAY_PORT"

[ -x "$BIN" ] || cargo build --release --locked --bin drawbridge

cleanup() {
    [ -n "${GATEWAY_PID:-}" ] && kill "$GATEWAY_PID" 2>/dev/null && wait "$GATEWAY_PID" 2>/dev/null
    [ -f "$WORK/nginx.pid" ] && kill "$(cat "$WORK/nginx.pid")" 2>/dev/null
    # Only this run's keys; the shared Redis keeps everything else.
    redis-cli --scan --pattern "$PREFIX:*" | xargs -r -n 500 redis-cli del >/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT

cat >"$WORK/nginx.conf" <<EOF
worker_processes 2;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log;
events { worker_connections 16384; }
http {
    access_log off;
    server { listen 127.0.0.1:$NGINX_PORT; location / { return 200 "ok\n"; } }
}
EOF
nginx -c "$WORK/nginx.conf" -p "$WORK"

ulimit -n 20000
DRAWBRIDGE_GATEWAY__LISTEN="127.0.0.1:$GATEWAY_PORT" \
DRAWBRIDGE_GATEWAY__WORKERS=2 \
DRAWBRIDGE_REDIS__KEY_PREFIX="$PREFIX" \
DRAWBRIDGE_ROOMS__JOINS_PER_IP_PER_MINUTE=1000000000 \
DRAWBRIDGE_TELEMETRY__LOG_FILTER=warn \
    "$BIN" --config deploy/local.toml gateway >"$WORK/gateway.log" 2>&1 &
GATEWAY_PID=$!
for _ in $(seq 100); do curl -fs "$GATEWAY_URL/readyz" >/dev/null && break; sleep 0.2; done

curl -fs -X PUT -H "Authorization: Bearer $ADMIN_TOKEN" -H 'content-type: application/json' \
    -d '{"mode":"fifo","admit_per_minute":1,"max_active":1}' "$GATEWAY_URL/v1/admin/rooms/bench" >/dev/null
sleep 2 # every gateway picks the room up within rooms.refresh_millis
curl -fs -c "$WORK/jar" -X POST "$GATEWAY_URL/v1/rooms/bench/join" >/dev/null
COOKIE=$(awk '$6 ~ /^drawbridge_/ { printf "%s%s=%s", sep, $6, $7; sep="; " }' "$WORK/jar")
curl -fs -H "Cookie: $COOKIE" "$GATEWAY_URL/v1/rooms/bench/status" | grep -q '"state"'

printf 'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n' >"$WORK/post.lua"

# Prints "<requests/s> <p99>" of one wrk run.
measure() {
    wrk -t"$THREADS" -c"$1" -d"$DURATION" --latency "${@:2}" >"$WORK/wrk.out"
    local rps p99 errors
    rps=$(awk '/^Requests\/sec/ { print $2 }' "$WORK/wrk.out")
    p99=$(awk '$1 == "99%" { print $2 }' "$WORK/wrk.out")
    errors=$(awk '/Non-2xx|Socket errors/ { printf "%s ", $0 }' "$WORK/wrk.out")
    echo "$rps $p99 ${errors:-}"
}

echo "wrk -t$THREADS -c$CONNECTIONS -d$DURATION, $(nproc) cores, $(date -u +%Y-%m-%dT%H:%MZ), load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
read -r nginx_get_rps nginx_get_p99 _ < <(measure "$CONNECTIONS" "http://127.0.0.1:$NGINX_PORT/")
read -r status_rps status_p99 status_errors < <(measure "$CONNECTIONS" -H "Cookie: $COOKIE" "$GATEWAY_URL/v1/rooms/bench/status")
read -r nginx_post_rps nginx_post_p99 _ < <(measure "$CONNECTIONS" -s "$WORK/post.lua" "http://127.0.0.1:$NGINX_PORT/")
read -r join_rps join_p99 join_errors < <(measure "$CONNECTIONS" -s "$WORK/post.lua" "$GATEWAY_URL/v1/rooms/bench/join")
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
printf '| %-22s | %12s | %9s |\n' "target" "requests/s" "p99"
printf '| %-22s | %12s | %9s |\n' "nginx GET (baseline)" "$nginx_get_rps" "$nginx_get_p99"
printf '| %-22s | %12s | %9s | %sx nginx %s\n' "status" "$status_rps" "$status_p99" "$(ratio "$status_rps" "$nginx_get_rps")" "$status_errors"
printf '| %-22s | %12s | %9s |\n' "nginx POST (baseline)" "$nginx_post_rps" "$nginx_post_p99"
printf '| %-22s | %12s | %9s | %sx nginx %s\n' "join" "$join_rps" "$join_p99" "$(ratio "$join_rps" "$nginx_post_rps")" "$join_errors"

# Resident memory with 10,000 connections open and polling.
wrk -t"$THREADS" -c10000 -d20s -H "Cookie: $COOKIE" "$GATEWAY_URL/v1/rooms/bench/status" >"$WORK/wrk10k.out" &
WRK_PID=$!
sleep 12
open=$(ss -Htn state established "( sport = :$GATEWAY_PORT )" | wc -l)
rss=$(awk '/^VmRSS/ { print $2 }' "/proc/$GATEWAY_PID/status")
wait "$WRK_PID"
peak=$(awk '/^VmHWM/ { print $2 }' "/proc/$GATEWAY_PID/status")
echo "10,000 connections: $open established at the gateway, RSS $((rss / 1024)) MiB (peak $((peak / 1024)) MiB)"
awk '/^Requests\/sec|Socket errors/' "$WORK/wrk10k.out"

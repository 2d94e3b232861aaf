#!/usr/bin/env bash
# The gateway's own CPU instructions per status poll and per join, counted by valgrind's
# callgrind: repeatable to a tenth of a percent whatever else the machine is doing, unlike
# requests per second on two shared cores. Kernel work (the socket calls) is not counted.
# Each kind is served twice, 200 and 3,200 requests over one keep-alive connection, and the
# difference is divided by 3,000, which leaves out start-up and shutdown. Valgrind runs SHA-256
# without the CPU's SHA extensions, so the tokens' HMAC weighs more here than on the machine.
#
#   benches/gateway_instructions.sh          # BIN=target/production/drawbridge by default
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${BIN:-${CARGO_TARGET_DIR:-target}/production/drawbridge}
PORT=18082
URL="http://127.0.0.1:$PORT"
PREFIX="instructions-$(date +%s)"
WORK=$(mktemp -d)
[ -x "$BIN" ] || cargo build --profile production --locked --bin drawbridge

cleanup() {
    [ -n "${PID:-}" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
    redis-cli --scan --pattern "$PREFIX:*" | xargs -r -n 500 redis-cli del >/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT

# Starts the gateway (under `$@`, e.g. valgrind) with one worker and waits until it answers.
start() {
    DRAWBRIDGE_GATEWAY__LISTEN="127.0.0.1:$PORT" DRAWBRIDGE_GATEWAY__WORKERS=1 \
    DRAWBRIDGE_REDIS__KEY_PREFIX="$PREFIX" DRAWBRIDGE_ROOMS__JOINS_PER_IP_PER_MINUTE=1000000000 \
    DRAWBRIDGE_TELEMETRY__LOG_FILTER=warn \
        "$@" "$BIN" --config deploy/local.toml gateway >>"$WORK/gateway.log" 2>&1 &
    PID=$!
    for _ in $(seq 300); do curl -fs "$URL/readyz" >/dev/null && return; sleep 0.2; done
    echo "the gateway did not start; see its log:" >&2; cat "$WORK/gateway.log" >&2; exit 1
}
stop() { kill -INT "$PID"; wait "$PID" || true; PID=; }

# The room and one visitor's cookies, as in benches/waiting_room.sh.
start
curl -fs -X PUT -H "Authorization: Bearer development-only-admin-token-not-a-secret" \
    -H 'content-type: application/json' \
    -d '{"mode":"fifo","admit_per_minute":1,"max_active":1,"session_seconds":86400,"idle_seconds":3600}' \
    "$URL/v1/admin/rooms/bench" >/dev/null
sleep 2
curl -fs -X POST "$URL/v1/rooms/bench/join" >/dev/null # ticket 1 takes the one admission
curl -fs -c "$WORK/jar" -X POST "$URL/v1/rooms/bench/join" >/dev/null
COOKIE=$(awk '$6 ~ /^drawbridge_/ { printf "%s%s=%s", sep, $6, $7; sep="; " }' "$WORK/jar")
stop

# Instructions of a gateway process that served `$2` requests of kind `$1`.
instructions() {
    start valgrind --tool=callgrind --callgrind-out-file="$WORK/callgrind.out"
    python3 - "$PORT" "$1" "$2" "$COOKIE" <<'PY'
import http.client, sys
port, kind, n, cookie = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
connection = http.client.HTTPConnection("127.0.0.1", port)
for _ in range(n):
    if kind == "status":
        connection.request("GET", "/v1/rooms/bench/status", headers={"Cookie": cookie})
    else:
        connection.request("POST", "/v1/rooms/bench/join", body=b"", headers={"Content-Type": "application/json"})
    response = connection.getresponse()
    response.read()
    assert response.status == 200, f"{kind} answered {response.status}"
PY
    stop
    awk '/^summary:/ { print $2 }' "$WORK/callgrind.out"
}

echo "$(git rev-parse --short HEAD)$(git diff --quiet || echo +changes), $(date -u +%Y-%m-%dT%H:%MZ)"
for kind in status join; do
    few=$(instructions "$kind" 200)
    many=$(instructions "$kind" 3200)
    echo "$kind: $(((many - few) / 3000)) instructions per request"
done

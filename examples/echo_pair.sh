#!/usr/bin/env bash
# examples/echo_pair.sh — runs an echo server (examples/echo_server or echo_protocol_server) on a
# free port, then examples/echo_client against it, then stops the server.
# Usage: echo_pair.sh ECHO_SERVER ECHO_CLIENT
set -euo pipefail
server=$1 client=$2
out=$(mktemp)
"$server" 0 > "$out" &
pid=$!
trap 'kill $pid 2>/dev/null; rm -f "$out"' EXIT
for _ in $(seq 100); do grep -q "Serving on" "$out" && break; sleep 0.05; done
port=$(sed -n 's/.*Serving on 127.0.0.1:\([0-9]*\).*/\1/p' "$out")
[ -n "$port" ] || { echo "echo_server did not start"; exit 1; }
timeout 20 "$client" "$port"

#!/usr/bin/env bash
# The I/O thread's CPU per request, itemised by what it does (docs/performance.md §17):
#
#   bash bench/io-profile.sh js OUT        # JS handlers (bench/servers/peer.mjs)
#   bash bench/io-profile.sh native OUT    # the route cache (peer-native.mjs)
#
# Starts the server on 127.0.0.1:$PORT (default 38090), warms it up with wrk
# for 2 s, then records it with perf (cpu-clock, 999 Hz, DWARF call graphs)
# during 5 s of `wrk -t1 -c64 /plaintext`, and reads every thread's CPU
# time from /proc before and after. bench/perf-groups.py OUT then prints
# µs per request per group. Needs perf, wrk, curl and a `--profile
# profiling` build (`npx napi build --platform --profile profiling`, pointed
# at with NAPI_RS_NATIVE_LIBRARY_PATH) for symbols. Writes OUT.data (~80 MB),
# OUT.wrk, OUT.before, OUT.after.
set -eu -o pipefail
mode=$1
out=$2
port=${PORT:-38090}
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
file=$root/bench/servers/peer.mjs
[ "$mode" = native ] && file=$root/bench/servers/peer-native.mjs
PORT=$port node "$file" >/dev/null 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
for _ in $(seq 100); do
  curl -s -o /dev/null "http://127.0.0.1:$port/plaintext" && break
  sleep 0.1
done
wrk -t1 -c64 -d2s "http://127.0.0.1:$port/plaintext" >/dev/null
snap() { for t in /proc/$pid/task/*; do echo "$(basename "$t") $(cut -d' ' -f14,15 "$t/stat") $(cat "$t/comm")"; done; }
snap >"$out.before"
perf record -q -e cpu-clock -F 999 --call-graph dwarf,16384 -p $pid -o "$out.data" -- sleep 5.5 2>/dev/null &
perf_pid=$!
sleep 0.2
wrk -t1 -c64 -d5s "http://127.0.0.1:$port/plaintext" >"$out.wrk"
snap >"$out.after"
wait $perf_pid

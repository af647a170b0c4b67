#!/usr/bin/env bash
# System calls per full TLS handshake of the bench's HTTPS server
# (docs/performance.md §16.4, §16.5):
#
#   bash bench/tls-syscalls.sh [rsa|ecdsa] [SECONDS]
#
# Makes a self-signed certificate as `npm run bench` does, starts
# bench/servers/httpy.mjs with it (NAPI_RS_NATIVE_LIBRARY_PATH picks the
# addon, as everywhere), warms it up for 1 s with the built-in generator
# opening a new connection per request (a full handshake each, 16 at a
# time, `Connection: close`: the `handshake-*` rows), then counts the
# server's system calls with `strace -f -c` during SECONDS (default 3) of
# the same load, and prints each call per handshake. strace slows the
# server down: read the counts, not the rate.
set -eu -o pipefail
key=${1:-rsa}
secs=${2:-3}
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
work=$(mktemp -d)
pid=
trap 'kill $pid 2>/dev/null || true; rm -rf "$work"' EXIT
case $key in
  rsa) key_args=(-newkey rsa:2048) ;;
  ecdsa) key_args=(-newkey ec -pkeyopt ec_paramgen_curve:P-256) ;;
  *) echo "KEY: rsa or ecdsa" >&2; exit 2 ;;
esac
openssl req -x509 "${key_args[@]}" -nodes -keyout "$work/key.pem" -out "$work/cert.pem" -days 2 \
  -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 2>/dev/null
PORT=0 BENCH_TLS_CERT=$work/cert.pem BENCH_TLS_KEY=$work/key.pem node "$root/bench/servers/httpy.mjs" >"$work/ready" 2>/dev/null &
pid=$!
for _ in $(seq 150); do grep -q READY "$work/ready" && break; sleep 0.1; done
port=$(sed -n 's/^READY .*"port":\([0-9]*\).*/\1/p' "$work/ready")
load() {
  node "$root/bench/load.mjs" "{\"baseUrl\":\"https://127.0.0.1:$port\",\"route\":\"/plaintext\",\"insecure\":true,\"newConnectionPerRequest\":true,\"concurrency\":16,\"duration\":$1,\"warmup\":0,\"timeout\":5}"
}
load 1 >/dev/null
strace -f -c -q -p "$pid" -o "$work/strace" &
tracer=$!
sleep 0.5
load "$secs" >"$work/load"
sleep 0.2
kill -INT $tracer
wait $tracer || true
python3 - "$work/load" "$work/strace" <<'PY'
import json, sys
load = json.load(open(sys.argv[1]))
n = load['totalRequests'] - load.get('errors', 0)
print(f"handshakes: {n} ({load['totalRequests']} requests, {load.get('errors', 0)} errors)")
rows = []
for line in open(sys.argv[2]):
    f = line.split()
    # % time, seconds, usecs/call, calls, [errors], syscall
    if len(f) >= 5 and f[0][0].isdigit() and f[-1] != 'total':
        calls = int(f[3])
        errors = int(f[4]) if len(f) == 6 else 0
        rows.append((f[-1], calls, errors))
for name, calls, errors in sorted(rows, key=lambda r: -r[1]):
    extra = f" ({errors / n:.2f} failed)" if errors else ""
    print(f"{name:16} {calls / n:6.2f}{extra}")
PY

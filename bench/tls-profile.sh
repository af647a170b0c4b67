#!/usr/bin/env bash
# A server's CPU per full TLS handshake, itemised (docs/performance.md §16.2):
#
#   bash bench/tls-profile.sh httpy rsa OUT        # bench/servers/httpy.mjs
#   bash bench/tls-profile.sh node-https rsa OUT   # bench/servers/node-http.mjs over TLS
#   bash bench/tls-profile.sh nginx rsa OUT        # bench/servers/nginx-https.mjs (TLS 1.2 and 1.3)
#   python3 bench/tls-groups.py OUT                # µs per handshake, by group
#
# KEY is rsa (RSA 2048) or ecdsa (P-256). Makes a self-signed certificate
# as `npm run bench` does, starts the server on 127.0.0.1 (node with
# --perf-basic-prof, so its JavaScript frames have names), warms it up for
# 2 s with the built-in generator opening a new connection per request
# (a full handshake each, no resumption, 16 at a time: the `handshake-*`
# rows), then records every thread of the server with perf (cpu-clock,
# 999 Hz, DWARF call graphs) during 5 s of the same load, and reads the
# process's CPU time from /proc before and after. For HTTPy's symbols,
# point NAPI_RS_NATIVE_LIBRARY_PATH at a `--profile profiling` build
# (`npx napi build --platform --profile profiling`). Writes OUT.data,
# OUT.load (the generator's JSON), OUT.before and OUT.after.
set -eu -o pipefail
server=$1
key=$2
out=$3
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
certs=$(mktemp -d)
trap 'rm -rf "$certs"; kill $pid 2>/dev/null || true' EXIT
pid=
case $key in
  rsa) key_args=(-newkey rsa:2048) ;;
  ecdsa) key_args=(-newkey ec -pkeyopt ec_paramgen_curve:P-256) ;;
  *) echo "KEY: rsa or ecdsa" >&2; exit 2 ;;
esac
openssl req -x509 "${key_args[@]}" -nodes -keyout "$certs/key.pem" -out "$certs/cert.pem" -days 2 \
  -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 2>/dev/null
case $server in
  httpy) cmd=(node "$root/bench/servers/httpy.mjs") ;;
  node-https) cmd=(node --perf-basic-prof "$root/bench/servers/node-http.mjs") ;;
  nginx) cmd=(node "$root/bench/servers/nginx-https.mjs") ;;
  *) echo "SERVER: httpy, node-https or nginx" >&2; exit 2 ;;
esac
PORT=0 BENCH_TLS_CERT=$certs/cert.pem BENCH_TLS_KEY=$certs/key.pem "${cmd[@]}" >"$out.ready" 2>/dev/null &
pid=$!
for _ in $(seq 150); do grep -q READY "$out.ready" && break; sleep 0.1; done
port=$(sed -n 's/^READY .*"port":\([0-9]*\).*/\1/p' "$out.ready")
# The process doing the work: the server's own pid from READY (nginx runs
# as a child of its launcher), else the one started here.
served=$(sed -n 's/^READY .*"pid":\([0-9]*\).*/\1/p' "$out.ready")
served=${served:-$pid}
load() {
  node "$root/bench/load.mjs" "{\"baseUrl\":\"https://127.0.0.1:$port\",\"route\":\"/plaintext\",\"insecure\":true,\"newConnectionPerRequest\":true,\"concurrency\":16,\"duration\":$1,\"warmup\":0,\"timeout\":5}"
}
load 2 >/dev/null
snap() { for t in /proc/$served/task/*; do echo "$(basename "$t") $(cut -d' ' -f14,15 "$t/stat") $(cat "$t/comm")"; done; }
snap >"$out.before"
perf record -q -e cpu-clock -F 999 --call-graph dwarf,16384 -p "$served" -o "$out.data" -- sleep 5.5 2>/dev/null &
perf_pid=$!
sleep 0.2
load 5 >"$out.load"
snap >"$out.after"
wait $perf_pid

// nginx as the TLS peer of the HTTPS rows: GET /plaintext (and
// /plaintext-cached, for the rows where HTTPy answers from its route cache)
// answers the same 13 bytes as the other servers, over TLS with the certificate in
// $BENCH_TLS_CERT / $BENCH_TLS_KEY. One process (`master_process off`), so
// its CPU time is the pid printed; keep-alive without a request cap.
// TLS settings: TLS 1.2 and 1.3 (`ssl_protocols TLSv1.2 TLSv1.3`, nginx's
// default from 1.23.4; before it, as in Debian 12's 1.22, the default
// leaves TLS 1.3 out and every client got TLS 1.2, unlike HTTPy and
// node:https); HTTPy's choice of suite (docs/tls-http2.md, "Cipher
// suites"): the server's order, AES-128-GCM first, ChaCha20 first for a
// client that lists it first (`ssl_prefer_server_ciphers on`,
// `ssl_conf_command Ciphersuites ...`, `Options PrioritizeChaCha`;
// BENCH_TLS_CLIENT_ORDER=1 leaves nginx's defaults: the client's order);
// otherwise nginx's defaults: OpenSSL's default groups, `HIGH:!aNULL:!MD5`
// for TLS 1.2, stateless session tickets (two per TLS 1.3 handshake, as
// OpenSSL sends them), no session cache. BENCH_NGINX_PROTOCOLS overrides
// the list (`TLSv1.2`: the old rows).
// Prints `READY {json}` once listening on $PORT.
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { HELLO, port, ready } from './common.mjs'

const bin = process.env.BENCH_NGINX ?? 'nginx'
const want = port() || (await new Promise((resolve) => {
  const s = net.createServer().listen(0, '127.0.0.1', () => {
    const p = s.address().port
    s.close(() => resolve(p))
  })
}))
const dir = mkdtempSync(join(tmpdir(), 'httpy-bench-nginx-'))
writeFileSync(join(dir, 'nginx.conf'), `
master_process off;
daemon off;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  keepalive_requests 10000000;
  keepalive_timeout 60s;
  server {
    listen 127.0.0.1:${want} ssl;
    ssl_certificate ${process.env.BENCH_TLS_CERT};
    ssl_certificate_key ${process.env.BENCH_TLS_KEY};
    ssl_protocols ${process.env.BENCH_NGINX_PROTOCOLS ?? 'TLSv1.2 TLSv1.3'};
${process.env.BENCH_TLS_CLIENT_ORDER === '1' ? '' : `    ssl_prefer_server_ciphers on;
    ssl_conf_command Ciphersuites TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256;
    ssl_conf_command Options PrioritizeChaCha;
`}    location = /plaintext { default_type text/plain; return 200 '${HELLO}'; }
    location = /plaintext-cached { default_type text/plain; return 200 '${HELLO}'; }
  }
}
`)
const child = spawn(bin, ['-p', dir, '-c', join(dir, 'nginx.conf')], { stdio: ['ignore', 'inherit', 'inherit'] })
child.on('exit', (code) => {
  rmSync(dir, { recursive: true, force: true })
  process.exit(code ?? 1)
})
for (let i = 0; i < 100; i++) {
  const up = await new Promise((resolve) => {
    const s = net.connect(want, '127.0.0.1', () => (s.destroy(), resolve(true)))
    s.on('error', () => resolve(false))
  })
  if (up) break
  await new Promise((r) => setTimeout(r, 50))
}
ready({ name: 'nginx-https', port: want, pid: child.pid })
process.on('SIGTERM', () => child.kill('SIGQUIT'))

#!/usr/bin/env python3
"""A server's CPU per full TLS handshake, by what it does (docs/performance.md §16.2).

    python3 bench/tls-groups.py OUT

OUT is what bench/tls-profile.sh wrote. Every perf sample of the server
(all its threads) goes to the first group whose pattern matches one of its
frames, walking from the leaf towards the root, so a big-number multiply
under the RSA signature counts as the signature and a SHA-256 block under
HKDF as hashing. A sample in the kernel goes by the system call that
entered it (the user-space function nearest the kernel); copies
(memcpy/memmove/memset) count for their caller. A group's share of the
samples times the process's CPU per handshake over the same window
(/proc, OUT.before/OUT.after; handshakes from OUT.load) gives its µs per
handshake. LEAVES=group,group lists the leaf functions of those groups.
"""
import collections
import json
import os
import re
import sys

from perfdata import Tally, group_of, samples, snap

out = sys.argv[1]

ALLOC = re.compile(r'^(malloc|free|cfree|realloc|calloc|_int_malloc|_int_free|_int_realloc|'
                   r'malloc_consolidate|unlink_chunk|__libc_(malloc|free|realloc|calloc)|tcache_|'
                   r'__rust_(alloc|dealloc|realloc)|__rdl_|CRYPTO_(malloc|free|zalloc|clear_free)|'
                   r'OPENSSL_(malloc|free|zalloc|clear_free))')
COPY = re.compile(r'^(__)?mem(cpy|move|set)|^__memcpy|^__memmove|^__memset')
SYSCALLS = [
    (re.compile(r'accept'), 'kernel: accept'),
    (re.compile(r'^(__)?close|__libc_close|^close$'), 'kernel: close (TCP teardown)'),
    (re.compile(r'recv|^__read|^read$|^__libc_read|readv'), 'kernel: read'),
    (re.compile(r'writev|^__send|^send|sendto|sendmsg|^__libc_write|^write$|^__write'), 'kernel: write'),
    (re.compile(r'epoll'), 'kernel: epoll_wait (sleep, wake-up)'),
    (re.compile(r'setsockopt|getsockopt|getpeername|getsockname|shutdown|fcntl|ioctl'),
     'kernel: socket options, shutdown'),
    (re.compile(r'futex|^syscall|lll_lock_wake|eventfd|pthread_cond'), 'kernel: wake another thread'),
    (re.compile(r'getrandom'), 'kernel: getrandom'),
]
USER = [
    # Public-key work and its big-number arithmetic.
    (re.compile(r'(^|_)(RSA|rsa)_|rsaz|RSAZ|RsaKeyPair|RsaSigningKey|rsa::'), 'RSA signature'),
    # Asm without unwind tables: the stack often ends at the leaf. On the
    # RSA rows this is the signature's arithmetic (nothing else there does
    # big-number work); on the ECDSA rows the scalar arithmetic's.
    (re.compile(r'^(__)?(bn_|BN_)|extract_multiplier|mont'), 'big numbers (stack ends at the leaf)'),
    # OpenSSL 3's algorithm fetching: name maps, property queries, locks.
    (re.compile(r'strcmp|do_name|OPENSSL_LH_|rwlock|namemap|method_store|_fetch|ossl_lib_ctx|'
                r'ossl_provider|DECODER|property|ossl_param|OSSL_PARAM'),
     'OpenSSL 3: algorithm fetch (name and property lookups, locks)'),
    (re.compile(r'(^|_)(ECDSA|ecdsa)_|EcdsaKeyPair|EcdsaSigningKey|nistz256|p256|ecp_nistz|ec_GFp|'
                r'EC_POINT|ec_scalar|ec_key_'), 'ECDSA P-256 signature'),
    (re.compile(r'x25519|X25519|curve25519|fiat_25519|ecx_|ossl_ecx'), 'X25519'),
    (re.compile(r'mlkem|MLKEM|ML_KEM|kyber'), 'ML-KEM'),
    # Symmetric crypto.
    (re.compile(r'(?i)sha(1|256|512|3)|sha_block|hkdf|hmac|md_update|digest|keccak|tls13_hkdf|'
                r'key_schedule|prf'), 'hashing: transcript, HKDF, HMAC'),
    (re.compile(r'(?i)aes|gcm|ghash|gfmul|chacha|poly1305|aead'), 'AEAD (record encryption)'),
    (re.compile(r'(?i)rand_|ctr_drbg|drbg|getrandom|SecureRandom|fill_random'), 'randomness'),
    # rustls
    (re.compile(r'ServerSessionMemoryCache|ServerSessionValue|limited_cache|LimitedCache|'
                r'emit_ticket|send_ticket|ticket|Ticket'), 'rustls: session tickets and cache'),
    (re.compile(r'rustls::msgs::|Codec|codec::'), 'rustls: message encoding and parsing'),
    (re.compile(r'webpki|CertifiedKey|SniResolver|cert_resolver|ResolvesServerCert'),
     'certificate selection'),
    (re.compile(r'tokio_rustls'), 'tokio-rustls'),
    (re.compile(r'rustls::'), 'rustls: state machine, key schedule, buffers'),
    # OpenSSL's TLS (node:https)
    (re.compile(r'(^|_)(ssl|SSL|tls|TLS|dtls)(_|$)|ossl_statem|statem|WPACKET|PACKET_|ssl3_|'
                r'tls1_|tls13_|tls_construct|tls_process'), 'OpenSSL libssl: state machine, records'),
    (re.compile(r'^(EVP_|OSSL_|ossl_|BN_|bn_|ERR_|CRYPTO_|OPENSSL_|X509|x509|ASN1|asn1|d2i_|i2d_)'),
     'OpenSSL libcrypto: other'),
    # The HTTP request and the server around it.
    (re.compile(r'hyper::|h1::|httparse|dispatch::|respond::|embedder::'),
     'HTTP request (parse, route, answer)'),
    (re.compile(r'net::conn|net::listener|config::tls|config::sni|config::client_auth'),
     'HTTPy connection setup (accept loop, serve_tls)'),
    (re.compile(r'proto::'), 'HTTPy protocol glue (proto)'),
    (re.compile(r'tokio::'), 'Tokio: accept, spawn, poll, timers'),
    (re.compile(r'TLSWrap|node::crypto'), 'node: TLSWrap, crypto bindings (C++)'),
    (re.compile(r'^(JS|LazyCompile|Function|Builtin|Eval|Stub|RegExp|BytecodeHandler|Handler|'
                r'InterpretedFunction|Script):|^Builtins_'), 'JavaScript (V8: handlers, node:https)'),
    (re.compile(r'v8::internal::compiler|v8::internal::maglev|v8::internal::baseline'),
     'V8 JIT compilers'),
    (re.compile(r'v8::|^Builtins|Heap|Scavenger|MarkCompact|GC'), 'V8 runtime, GC'),
    (re.compile(r'node::|uv_|uv__'), 'node C++, libuv'),
]



def user_group(frames):
    for sym, _ in frames:
        if COPY.search(sym) or ALLOC.search(sym):
            continue
        hit = next((g for p, g in USER if p.search(sym)), None)
        if hit:
            return hit
    return 'other user code'


tally = Tally()
for _, frames in samples(out + '.data'):
    tally.add(group_of(frames, SYSCALLS, ALLOC, user_group, 'kernel: other (softirq, scheduling)'), frames)

with open(out + '.load') as f:
    load = json.loads(f.read().strip().split('\n')[-1])
handshakes = load['totalRequests']


tick_us = 1e6 / os.sysconf('SC_CLK_TCK')
before, after = snap(out + '.before'), snap(out + '.after')
cpu = sum((after[t][0] - before.get(t, (0, ''))[0]) * tick_us for t in after)
per = cpu / handshakes
threads = collections.Counter()
for t in after:
    threads[after[t][1]] += (after[t][0] - before.get(t, (0, ''))[0]) * tick_us / handshakes
print(f'{out}: {handshakes} handshakes at {load["requestsPerSecond"]:.0f}/s, {load.get("errors", 0)} errors, '
      f'{per:.1f} µs of CPU per handshake (/proc), {tally.total} samples')
print('  by thread: ' + ', '.join(f'{name} {us:.1f}' for name, us in threads.most_common() if us >= 0.5))
tally.print(per, 'handshake', width=52, digits=1)

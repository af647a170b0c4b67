#!/usr/bin/env python3
"""What a TLS client and server agree on, read off the wire.

A relay on 127.0.0.1 in front of a server: it passes every byte both ways
and reads the two messages TLS 1.3 still sends in the clear, the
ClientHello (suites, groups and key shares offered) and the ServerHello
(the suite chosen, the group of the server's key share, or a
HelloRetryRequest), and at the end prints how many connections saw each
combination. It is how the handshake rows' settings were checked against
every server with the load generator itself as the client
(docs/performance.md §16.6): a client and a server that both support a
post-quantum hybrid would agree on it here, where `openssl s_client`,
which offers none, would not show it.

    python3 bench/tls-hello.py LISTEN_PORT SERVER_PORT SECONDS

Point the client at LISTEN_PORT; the report comes after SECONDS.
"""

import asyncio
import collections
import struct
import sys

GROUPS = {
    0x0017: "P-256", 0x0018: "P-384", 0x0019: "P-521", 0x001D: "X25519",
    0x001E: "X448", 0x11EC: "X25519MLKEM768", 0x6399: "X25519Kyber768Draft00",
}
SUITES = {
    0x1301: "TLS_AES_128_GCM_SHA256", 0x1302: "TLS_AES_256_GCM_SHA384",
    0x1303: "TLS_CHACHA20_POLY1305_SHA256",
}
HRR_RANDOM = bytes.fromhex("CF21AD74E59A6111BE1D8C021E65B891C2A211167ABB8C5E079E09E2C8A8339C")


def name(table, v):
    return table.get(v, f"0x{v:04x}")


def extensions(body, at):
    """The extensions of a hello whose extension block starts at `at`."""
    (total,) = struct.unpack_from(">H", body, at)
    at += 2
    end = at + total
    out = {}
    while at + 4 <= end:
        kind, size = struct.unpack_from(">HH", body, at)
        out[kind] = body[at + 4:at + 4 + size]
        at += 4 + size
    return out


def client_hello(body):
    at = 2 + 32  # version, random
    at += 1 + body[at]  # session id
    (n,) = struct.unpack_from(">H", body, at)
    suites = [struct.unpack_from(">H", body, at + 2 + 2 * i)[0] for i in range(n // 2)]
    at += 2 + n
    at += 1 + body[at]  # compression methods
    ext = extensions(body, at)
    groups = []
    if 0x000A in ext:
        g = ext[0x000A]
        groups = [struct.unpack_from(">H", g, 2 + 2 * i)[0] for i in range((len(g) - 2) // 2)]
    shares = []
    if 0x0033 in ext:
        s = ext[0x0033]
        i = 2
        while i + 4 <= len(s):
            group, size = struct.unpack_from(">HH", s, i)
            shares.append(group)
            i += 4 + size
    offered = [name(SUITES, x) for x in suites if x in SUITES]
    return (
        "offered suites " + ",".join(offered),
        "groups " + ",".join(name(GROUPS, x) for x in groups),
        "key shares " + ",".join(name(GROUPS, x) for x in shares),
    )


def server_hello(body):
    random = body[2:34]
    at = 34
    at += 1 + body[at]  # session id echo
    (suite,) = struct.unpack_from(">H", body, at)
    at += 3  # suite, compression
    ext = extensions(body, at)
    version = "TLS 1.3" if 0x002B in ext and ext[0x002B] == b"\x03\x04" else "TLS 1.2 or older"
    group = ""
    if 0x0033 in ext:
        (g,) = struct.unpack_from(">H", ext[0x0033], 0)
        group = name(GROUPS, g)
    kind = "HelloRetryRequest" if random == HRR_RANDOM else "ServerHello"
    return (kind, version, name(SUITES, suite), "group " + group)


class Reader:
    """Collects the first handshake message of one direction."""

    def __init__(self, parse):
        self.buf = b""
        self.parse = parse
        self.done = None

    def feed(self, data):
        if self.done is not None:
            return
        self.buf += data
        if len(self.buf) < 5:
            return
        kind, _, size = struct.unpack_from(">BHH", self.buf, 0)
        if kind != 22:
            self.done = ("not a handshake record",)
            return
        if len(self.buf) < 5 + size:
            return
        msg = self.buf[5:5 + size]
        try:
            self.done = self.parse(msg[4:4 + int.from_bytes(msg[1:4], "big")])
        except (struct.error, IndexError):
            self.done = ("unreadable hello",)


seen = collections.Counter()


async def pipe(src, dst, reader):
    try:
        while data := await src.read(65536):
            reader.feed(data)
            dst.write(data)
            await dst.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        dst.close()


async def relay(client_r, client_w, port):
    try:
        server_r, server_w = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        client_w.close()
        return
    hello, answer = Reader(client_hello), Reader(server_hello)
    await asyncio.gather(pipe(client_r, server_w, hello), pipe(server_r, client_w, answer))
    if hello.done and answer.done:
        seen[answer.done + hello.done] += 1


async def main():
    listen, port, seconds = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
    server = await asyncio.start_server(lambda r, w: relay(r, w, port), "127.0.0.1", listen)
    async with server:
        await asyncio.sleep(seconds)
    for combo, count in seen.most_common():
        print(f"{count:6d}  " + " | ".join(combo))


if __name__ == "__main__":
    asyncio.run(main())

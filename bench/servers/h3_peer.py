"""The three common routes of the peers comparison (/plaintext, /json,
/users/{id}, as in peer.mjs) as a plain ASGI app, for Hypercorn + aioquic in
bench/h3-peers.mjs. No framework: the server's own cost is what is compared.
"""

import json

HELLO = b"Hello, World!"


async def _send(send, status, body, content_type):
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", content_type), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    path = scope["path"]
    if path == "/plaintext":
        await _send(send, 200, HELLO, b"text/plain")
    elif path == "/json":
        await _send(send, 200, json.dumps({"message": HELLO.decode()}, separators=(",", ":")).encode(), b"application/json")
    elif path.startswith("/users/") and path.count("/") == 2:
        await _send(send, 200, json.dumps({"id": path[len("/users/") :]}, separators=(",", ":")).encode(), b"application/json")
    else:
        await _send(send, 404, b"not found", b"text/plain")

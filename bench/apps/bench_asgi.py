"""The ASGI app every ASGI server of `make bench` serves: `/hello` at once, `/sleep10` after
awaiting 10 ms (a view waiting on a database or an API), both `Hello, world!`."""

from __future__ import annotations

import asyncio

HELLO = b"Hello, world!"
HEAD = {
    "type": "http.response.start",
    "status": 200,
    "headers": [(b"content-type", b"text/plain"), (b"content-length", b"13")],
}
BODY = {"type": "http.response.body", "body": HELLO}


async def app(scope, receive, send):
    if scope["type"] != "http":
        return  # no lifespan: each server's `auto` finds that out once
    if scope["path"] == "/sleep10":
        await asyncio.sleep(0.01)
    await send(HEAD)
    await send(BODY)

"""An ASGI app for tests/python/test_asgi.py: each route shows one part of the ASGI contract."""

from __future__ import annotations

import asyncio
import gc
import json
import os
from collections.abc import Mapping

LIFESPAN = os.environ.get("ASGI_LIFESPAN", "ok")


async def reply(send, status: int, body: bytes, headers=()) -> None:
    await send(
        {"type": "http.response.start", "status": status, "headers": [(b"content-type", b"text/plain"), *headers]}
    )
    await send({"type": "http.response.body", "body": body})


async def lifespan(receive, send) -> None:
    message = await receive()
    assert message["type"] == "lifespan.startup"
    if LIFESPAN == "fail":
        await send({"type": "lifespan.startup.failed", "message": "the database is not there"})
        return
    await send({"type": "lifespan.startup.complete"})
    await receive()
    await send({"type": "lifespan.shutdown.complete"})


async def nap_in_a_view() -> None:
    """A view awaiting something slow: its await chain is what the slow-request log shows."""
    await asyncio.sleep(0.6)


async def app(scope, receive, send) -> None:
    if scope["type"] == "lifespan":
        if LIFESPAN == "unsupported":
            raise RuntimeError("no lifespan here")
        await lifespan(receive, send)
        return
    path = scope["path"]
    if path.endswith("/scope"):
        shown = {key: value for key, value in scope.items() if key not in ("extensions", "state")}
        shown["headers"] = [[name.decode("latin-1"), value.decode("latin-1")] for name, value in scope["headers"]]
        for key in ("raw_path", "query_string"):
            shown[key] = None if shown[key] is None else shown[key].decode("latin-1")
        params = scope["extensions"]["fastcgi"]["params"]
        assert isinstance(params, Mapping) and "REQUEST_METHOD" in params and "NOPE" not in params
        shown["params"] = dict(params)
        shown["role"] = scope["extensions"]["fastcgi"]["role"]
        await reply(send, 200, json.dumps(shown).encode())
    elif path.endswith("/chunks"):
        sizes = []
        while True:
            message = await receive()
            sizes.append([len(message["body"]), message["more_body"]])
            if not message["more_body"]:
                break
        await reply(send, 200, json.dumps(sizes).encode())
    elif path.endswith("/raise"):
        raise ValueError("raised before the response on purpose")
    elif path.endswith("/nothing"):
        return
    elif path.endswith("/half"):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"half", "more_body": True})
    elif path.endswith("/trailers"):
        await send({"type": "http.response.start", "status": 200, "headers": [], "trailers": True})
    elif path.endswith("/bad-header"):
        await reply(send, 200, b"x", headers=[(b"x-evil", b"a\r\nInjected: 1")])
    elif path.endswith("/stream"):
        await send({"type": "http.response.start", "status": 201, "headers": [(b"x-streamed", b"yes")]})
        for piece in (b"one ", b"two ", b"three"):
            await send({"type": "http.response.body", "body": piece, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
    elif path.endswith("/nap"):
        await nap_in_a_view()
        await reply(send, 200, b"rested")
    elif path.endswith("/frozen"):
        await reply(send, 200, str(gc.get_freeze_count()).encode())
    elif path.endswith("/errors"):
        scope["extensions"]["fastcgi"]["errors"].write("to the web server's log\n")
        await reply(send, 200, b"logged")
    else:
        await reply(send, 404, b"not found")

"""The echo contract (see fcgi-core/examples/echo.rs) as an ASGI app, so the raw-protocol suites
and the end-to-end matrix run against the ASGI face too: tests/apps/wsgi_echo.py's routes, each
written the asynchronous way (the body read with `receive()`, `/slow` awaiting a sleep)."""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from urllib.parse import parse_qs

import fcgi_wsgi

IMPORTED_BY = os.getpid()
PATTERN = bytes(i % 251 for i in range(251 * 1044))
#: What `/grow` keeps: memory the process holds until it ends (a leak, on purpose).
HELD = []
#: Set by the lifespan's startup, seen in every request's scope.
STARTED = {"lifespan": "started"}


def route(scope):
    segments = [s for s in scope["path"].split("/") if s]
    for i, segment in enumerate(segments):
        if segment in ROUTES:
            return segment, "/".join(segments[i + 1 :])
    return "", ""


def query(scope, name, default=""):
    return parse_qs(scope["query_string"].decode("latin-1")).get(name, [default])[0]


async def respond(send, status, body, content_type=b"text/plain", extra=()):
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode()), *extra]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def stream_start(send, first):
    """Starts a response streamed in several body messages, `first` its first bytes."""
    headers = [(b"content-type", b"application/octet-stream")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": first, "more_body": True})


async def chunks(receive):
    """The body's chunks as the app awaits them."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ConnectionError("the client went away")
        yield message.get("body", b"")
        if not message.get("more_body"):
            return


async def read_body(receive):
    return b"".join([chunk async for chunk in chunks(receive)])


async def hello(scope, receive, send, rest):
    await respond(send, 200, b"Hello, world!")


async def env(scope, receive, send, rest):
    params = scope["extensions"]["fastcgi"]["params"]
    lines = [f"{k}={v}\n" for k, v in params.items()]
    await respond(send, 200, "".join(lines).encode("latin-1"))


async def echo(scope, receive, send, rest):
    prefix = query(scope, "prefix")
    if prefix:
        await stream_start(send, b"p" * int(prefix))
        async for chunk in chunks(receive):
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        return
    await respond(send, 200, await read_body(receive), b"application/octet-stream")


async def big(scope, receive, send, rest):
    n = int(query(scope, "n", "0"))
    headers = [(b"content-type", b"application/octet-stream"), (b"content-length", str(n).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    sent = 0
    while sent < n:
        block = PATTERN[: min(len(PATTERN), n - sent)]
        sent += len(block)
        await send({"type": "http.response.body", "body": block, "more_body": sent < n})
    if n == 0:
        await send({"type": "http.response.body", "body": b""})


async def status(scope, receive, send, rest):
    code = int(rest or "500")
    await respond(send, code, f"status {code}\n".encode())


async def cookies(scope, receive, send, rest):
    extra = [(b"set-cookie", b"a=1; Path=/"), (b"set-cookie", b"b=2; Path=/")]
    await respond(send, 200, b"cookies\n", extra=extra)


async def stderr(scope, receive, send, rest):
    scope["extensions"]["fastcgi"]["errors"].write(f"echo-stderr: {query(scope, 'msg')}\n")
    await respond(send, 200, b"ok\n")


async def stats(scope, receive, send, rest):
    counts = fcgi_wsgi.server_stats() or {"connections": 0, "requests": 0}
    await respond(send, 200, "connections={connections} requests={requests}\n".format(**counts).encode())


async def slow(scope, receive, send, rest):
    ms = int(query(scope, "ms", "100"))
    await asyncio.sleep(ms / 1000)
    await respond(send, 200, f"slept {ms}\n".encode())


async def spin(scope, receive, send, rest):
    """Runs Python code for `s` seconds without awaiting (a view stuck in a loop); `finally`
    writes `mark`, so a test sees the view unwound, and by what."""
    seconds, mark = float(query(scope, "s", "1")), query(scope, "mark")
    by = "nothing"
    try:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            await asyncio.sleep(0)
    except BaseException as exc:
        by = type(exc).__name__
        raise
    finally:
        if mark:
            with open(mark, "w") as f:
                f.write(f"unwound by {by}\n")
    await respond(send, 200, b"spun\n")


async def grow(scope, receive, send, rest):
    HELD.append(b"g" * (int(query(scope, "mib", "1")) << 20))
    await respond(send, 200, f"{os.getpid()}\n".encode())


async def pid(scope, receive, send, rest):
    await respond(send, 200, f"{os.getpid()}\n".encode())


async def imported(scope, receive, send, rest):
    await respond(send, 200, f"{IMPORTED_BY} {os.getpid()}\n".encode())


async def sha256(scope, receive, send, rest):
    size, digest = 0, hashlib.sha256()
    async for chunk in chunks(receive):
        size += len(chunk)
        digest.update(chunk)
    await respond(send, 200, f"{size} {digest.hexdigest()}\n".encode())


async def fail(scope, receive, send, rest):
    after = query(scope, "after")
    if after:
        await stream_start(send, b"f" * int(after))
    raise RuntimeError("the app failed on purpose")


async def lifespan(scope, receive, send, rest):
    """The state the lifespan's startup set, as this request's scope has it."""
    await respond(send, 200, repr(scope.get("state")).encode())


ROUTES = {
    f.__name__: f
    for f in (
        hello,
        env,
        echo,
        big,
        status,
        cookies,
        stderr,
        stats,
        slow,
        spin,
        grow,
        pid,
        imported,
        sha256,
        fail,
        lifespan,
    )
}


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                scope["state"].update(STARTED)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    name, rest = route(scope)
    handler = ROUTES.get(name)
    if handler is None:
        await respond(send, 404, b"not found\n")
    else:
        await handler(scope, receive, send, rest)

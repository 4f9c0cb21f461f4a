"""The echo contract (see fcgi-core/examples/echo.rs) as a WSGI app, so the raw-protocol suites
and the end-to-end matrix run against the Python face too."""

from __future__ import annotations

import hashlib
import os
import time
from urllib.parse import parse_qs

import fcgi_wsgi

ROUTES = (
    "hello",
    "env",
    "echo",
    "big",
    "status",
    "cookies",
    "stderr",
    "stats",
    "slow",
    "pid",
    "fail",
    "imported",
    "sha256",
    "spin",
    "grow",
)
# The process that imported this module: with pre-forked processes, each imports it after the fork
# unless the app is preloaded.
IMPORTED_BY = os.getpid()
PATTERN = bytes(i % 251 for i in range(251 * 1044))
#: What `/grow` keeps: memory the process holds until it ends (a leak, on purpose).
HELD = []


def route(environ):
    path = environ.get("PATH_INFO") or environ.get("REQUEST_URI", "/").split("?")[0]
    segments = [s for s in path.split("/") if s]
    for i, segment in enumerate(segments):
        if segment in ROUTES:
            return segment, "/".join(segments[i + 1 :])
    return "", ""


def query(environ, name, default=""):
    return parse_qs(environ.get("QUERY_STRING", "")).get(name, [default])[0]


def respond(start_response, status, body, content_type="text/plain", extra=()):
    start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(body))), *extra])
    return [body]


def big(n):
    sent = 0
    while sent < n:
        block = PATTERN[: min(len(PATTERN), n - sent)]
        sent += len(block)
        yield block


def echo_after(environ, n):
    """N bytes of `p` out before the body is read, then the body (`/echo?prefix=N`)."""
    yield b"p" * n
    yield environ["wsgi.input"].read()


def fail_after(n):
    """N bytes of `f`, then a failure: the response is cut short (`/fail?after=N`)."""
    yield b"f" * n
    raise RuntimeError("the app failed on purpose after its response began")


def spin(seconds, mark):
    """Runs Python code for `seconds` (a view stuck in a loop); `finally` writes `mark` (a path),
    so a test sees the view unwound, and by what (`/spin?s=N&mark=PATH`)."""
    by = "nothing"
    try:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            pass
    except BaseException as exc:
        by = "fcgi_wsgi.RequestTimeout" if type(exc) is fcgi_wsgi.RequestTimeout else type(exc).__name__
        raise
    finally:
        if mark:
            with open(mark, "w") as f:
                f.write(f"unwound by {by}\n")


def sha256_of_input(environ):
    """Reads the body in chunks, never holding it whole: `SIZE SHA256\n` (a streaming upload)."""
    stream, size, digest = environ["wsgi.input"], 0, hashlib.sha256()
    while chunk := stream.read(1 << 20):
        size += len(chunk)
        digest.update(chunk)
    return f"{size} {digest.hexdigest()}\n".encode()


def app(environ, start_response):
    name, rest = route(environ)
    if name == "hello":
        return respond(start_response, "200 OK", b"Hello, world!")
    if name == "env":
        lines = [f"{k}={v}\n" for k, v in environ.items() if isinstance(v, str) and not k.startswith("wsgi.")]
        return respond(start_response, "200 OK", "".join(lines).encode("latin-1"))
    if name == "echo":
        prefix = query(environ, "prefix")
        if prefix:
            start_response("200 OK", [("Content-Type", "application/octet-stream")])
            return echo_after(environ, int(prefix))
        body = environ["wsgi.input"].read()
        return respond(start_response, "200 OK", body, "application/octet-stream")
    if name == "big":
        n = int(query(environ, "n", "0"))
        start_response("200 OK", [("Content-Type", "application/octet-stream"), ("Content-Length", str(n))])
        return big(n)
    if name == "status":
        code = int(rest or "500")
        return respond(start_response, f"{code} Status {code}", f"status {code}\n".encode())
    if name == "cookies":
        cookies = [("Set-Cookie", "a=1; Path=/"), ("Set-Cookie", "b=2; Path=/")]
        return respond(start_response, "200 OK", b"cookies\n", extra=cookies)
    if name == "stderr":
        environ["wsgi.errors"].write(f"echo-stderr: {query(environ, 'msg')}\n")
        return respond(start_response, "200 OK", b"ok\n")
    if name == "stats":
        stats = fcgi_wsgi.server_stats() or {"connections": 0, "requests": 0}
        body = "connections={connections} requests={requests}\n".format(**stats).encode()
        return respond(start_response, "200 OK", body)
    if name == "slow":
        ms = int(query(environ, "ms", "100"))
        time.sleep(ms / 1000)
        return respond(start_response, "200 OK", f"slept {ms}\n".encode())
    if name == "spin":
        spin(float(query(environ, "s", "1")), query(environ, "mark"))
        return respond(start_response, "200 OK", b"spun\n")
    if name == "grow":
        HELD.append(b"g" * (int(query(environ, "mib", "1")) << 20))
        return respond(start_response, "200 OK", f"{os.getpid()}\n".encode())
    if name == "pid":
        return respond(start_response, "200 OK", f"{os.getpid()}\n".encode())
    if name == "imported":
        return respond(start_response, "200 OK", f"{IMPORTED_BY} {os.getpid()}\n".encode())
    if name == "sha256":
        return respond(start_response, "200 OK", sha256_of_input(environ))
    if name == "fail":
        after = query(environ, "after")
        if after:
            start_response("200 OK", [("Content-Type", "application/octet-stream")])
            return fail_after(int(after))
        raise RuntimeError("the app failed on purpose")
    return respond(start_response, "404 Not Found", b"not found\n")

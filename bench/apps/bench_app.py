"""The WSGI app every Python server in the benchmark serves: ours, flup's and uWSGI's.

Routes, as in ``fcgi-core/examples/echo.rs`` (the first path segment that names one):

- ``/hello``: the 13-byte ``Hello, world!``;
- ``/echo``: the request body, read whole, sent back;
- ``/big?n=BYTES``: ``n`` bytes, streamed in 256 KiB blocks;
- ``/sink``: reads the body in 64 KiB chunks and answers how many bytes came (memory stays flat
  when the server streams the body).
"""

from __future__ import annotations

ROUTES = ("hello", "echo", "big", "sink")
BLOCK = bytes(i % 251 for i in range(251 * 1044))
CHUNK = 64 << 10


def route(environ):
    path = environ.get("PATH_INFO") or environ.get("REQUEST_URI", "/").split("?")[0]
    for segment in path.split("/"):
        if segment in ROUTES:
            return segment
    return ""


def content_length(environ):
    try:
        return int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return 0


def query_number(environ, name):
    for pair in environ.get("QUERY_STRING", "").split("&"):
        key, _, value = pair.partition("=")
        if key == name and value.isdigit():
            return int(value)
    return 0


def stream(n):
    sent = 0
    while sent < n:
        block = BLOCK[: min(len(BLOCK), n - sent)]
        sent += len(block)
        yield block


def app(environ, start_response):
    name = route(environ)
    if name == "hello":
        body = b"Hello, world!"
    elif name == "echo":
        body = environ["wsgi.input"].read(content_length(environ))
    elif name == "big":
        n = query_number(environ, "n")
        start_response("200 OK", [("Content-Type", "application/octet-stream"), ("Content-Length", str(n))])
        return stream(n)
    elif name == "sink":
        stream_in, left, seen = environ["wsgi.input"], content_length(environ), 0
        while left > 0:
            chunk = stream_in.read(min(CHUNK, left))
            if not chunk:
                break
            seen += len(chunk)
            left -= len(chunk)
        body = f"{seen}\n".encode()
    else:
        start_response("404 Not Found", [("Content-Type", "text/plain"), ("Content-Length", "10")])
        return [b"not found\n"]
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]

"""The demo's WSGI app: a greeting, the environ (the recipe's list_environment), and an upload
that reports its size, served by fcgi_wsgi behind nginx."""

from __future__ import annotations

import hashlib

from fcgi_wsgi import list_environment


def app(environ, start_response):
    path = environ.get("PATH_INFO") or "/"
    if path == "/env":
        return list_environment(environ, start_response)
    if path == "/upload" and environ["REQUEST_METHOD"] == "POST":
        digest, size = hashlib.sha256(), 0
        while chunk := environ["wsgi.input"].read(65536):
            digest.update(chunk)
            size += len(chunk)
        body = f"{size} bytes, sha256 {digest.hexdigest()}\n".encode()
    elif path == "/":
        body = b"Hello from fcgi_wsgi: a WSGI app over FastCGI, through nginx.\nTry /env and POST /upload.\n"
    else:
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found\n"]
    start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8")])
    return [body]

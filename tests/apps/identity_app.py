"""A WSGI app that says who it runs as, and who imported it (tests/python and tests/e2e ask it).

It imports nothing but ``os`` (loaded already): after the drop to nobody, an interpreter that
lives in root's home (pyenv under /root) cannot read the rest of its standard library."""

from __future__ import annotations

import os

#: The effective user and group when this module was imported.
IMPORTED_AS = [os.geteuid(), os.getegid()]


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def app(environ, start_response):
    seen = {
        "pid": os.getpid(),
        "uid": os.getuid(),
        "euid": os.geteuid(),
        "gid": os.getgid(),
        "groups": os.getgroups(),
        "imported_as": IMPORTED_AS,
        "umask": current_umask(),
    }
    # JSON by hand: the values are numbers and lists of numbers.
    body = ("{" + ", ".join(f'"{key}": {value}' for key, value in seen.items()) + "}").encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]

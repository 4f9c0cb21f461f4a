"""The echo contract, as the tests check it: what each route of an echo app must answer.

The routes are described in tests/README.md; this module holds the parsing and the expected
values, so tests read as assertions about the web server in between.
"""

from __future__ import annotations

import functools
import hashlib
import re
from dataclasses import dataclass

HELLO = b"Hello, world!"
NOT_FOUND = b"not found\n"
COOKIES = ["a=1; Path=/", "b=2; Path=/"]
BIG_PERIOD = 251
FAILED = b"RuntimeError: the app failed on purpose"
"""The last line of the traceback of /fail (an optional route), which goes to the server's log."""
TRACEBACK = b"Traceback (most recent call last):"
SHORT_500_LIMIT = 200
"""A failing request's 500 page is a short text, never the traceback (unless asked for)."""


def stderr_line(msg: str) -> bytes:
    """What /stderr?msg=MSG writes to FCGI_STDERR (CGI: stderr), which lands in the server's log."""
    return f"echo-stderr: {msg}".encode()


def status_body(code: int) -> bytes:
    return f"status {code}\n".encode()


def parse_env(body: bytes) -> dict[bytes, bytes]:
    """/env: one `NAME=VALUE` line per param, raw bytes."""
    env = {}
    for line in body.split(b"\n"):
        if line:
            name, _, value = line.partition(b"=")
            env[name] = value
    return env


@dataclass(frozen=True)
class Stats:
    connections: int
    requests: int


def parse_stats(body: bytes) -> Stats:
    """/stats: `connections=N requests=M`."""
    match = re.fullmatch(rb"connections=(\d+) requests=(\d+)\n?", body)
    if match is None:
        raise ValueError(f"/stats answered {body!r}")
    return Stats(int(match[1]), int(match[2]))


@functools.cache
def big_sha256(n: int) -> str:
    """SHA-256 of /big?n=N: byte i is i % 251."""
    block = bytes(range(BIG_PERIOD)) * 4096  # whole periods, ~1 MiB
    sha = hashlib.sha256()
    whole, rest = divmod(n, len(block))
    for _ in range(whole):
        sha.update(block)
    sha.update(block[:rest])
    return sha.hexdigest()

"""Real HTTP requests to a front, with the standard library's http.client."""

from __future__ import annotations

import hashlib
import http.client
from dataclasses import dataclass
from typing import Protocol, Self

TIMEOUT = 120.0
CHUNK = 1 << 20


class Origin(Protocol):
    host: str
    port: int


@dataclass(repr=False)
class Response:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def header_values(self, name: str) -> list[str]:
        return self.headers.get_all(name) or []

    def __repr__(self) -> str:
        """The status, headers and start of the body: what an assertion message should show."""
        body = self.body[:400].decode("utf-8", "backslashreplace")
        more = f" [... {len(self.body)} bytes in all]" if len(self.body) > 400 else ""
        return f"HTTP {self.status}\n{self.headers}{body}{more}"


@dataclass
class Digest:
    """A response body too big to keep: its length and SHA-256."""

    status: int
    length: int
    sha256: str


class Connection:
    """One HTTP/1.1 connection, reused for every request made through it (keep-alive)."""

    def __init__(self, origin: Origin, timeout: float = TIMEOUT):
        self._conn = http.client.HTTPConnection(origin.host, origin.port, timeout=timeout)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self._conn.close()

    def request(
        self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> Response:
        self._conn.request(method, path, body=body, headers=headers or {})
        response = self._conn.getresponse()
        return Response(response.status, response.headers, response.read())

    def digest(self, path: str) -> Digest:
        self._conn.request("GET", path)
        response = self._conn.getresponse()
        sha, length = hashlib.sha256(), 0
        while chunk := response.read(CHUNK):
            sha.update(chunk)
            length += len(chunk)
        return Digest(response.status, length, sha.hexdigest())


def request(
    origin: Origin,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = TIMEOUT,
) -> Response:
    """One request on a fresh connection."""
    with Connection(origin, timeout) as conn:
        return conn.request(method, path, body, headers)


def get(origin: Origin, path: str, timeout: float = TIMEOUT) -> Response:
    return request(origin, "GET", path, timeout=timeout)


def digest(origin: Origin, path: str) -> Digest:
    """GET a large body without keeping it: its length and SHA-256."""
    with Connection(origin) as conn:
        return conn.digest(path)

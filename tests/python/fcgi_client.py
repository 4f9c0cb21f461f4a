"""A raw FastCGI client for tests: records and name-value pairs written by hand from the spec,
so the tests check our library against the protocol rather than against itself."""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass, field

BEGIN_REQUEST, ABORT_REQUEST, END_REQUEST, PARAMS, STDIN, STDOUT, STDERR, DATA = 1, 2, 3, 4, 5, 6, 7, 8
RESPONDER, AUTHORIZER, FILTER = 1, 2, 3


def record(kind: int, request_id: int, content: bytes = b"") -> bytes:
    padding = -len(content) % 8
    return struct.pack(">BBHHBx", 1, kind, request_id, len(content), padding) + content + b"\0" * padding


def pair_length(n: int) -> bytes:
    return bytes([n]) if n < 128 else struct.pack(">I", n | 0x80000000)


def pairs(params: dict[str, bytes | str]) -> bytes:
    out = b""
    for name, value in params.items():
        name_bytes = name.encode("latin-1")
        value_bytes = value if isinstance(value, bytes) else value.encode("latin-1")
        out += pair_length(len(name_bytes)) + pair_length(len(value_bytes)) + name_bytes + value_bytes
    return out


def stream(kind: int, request_id: int, data: bytes) -> bytes:
    chunks = [data[i : i + 65528] for i in range(0, len(data), 65528)]
    return b"".join(record(kind, request_id, chunk) for chunk in chunks) + record(kind, request_id)


@dataclass
class Response:
    stdout: bytes = b""
    stderr: bytes = b""
    app_status: int | None = None
    protocol_status: int | None = None
    headers: list[tuple[str, str]] = field(default_factory=list)
    status: int = 200
    body: bytes = b""
    # The app closed the connection without END_REQUEST, after a version-0 header: the response
    # was cut short.
    cut: bool = False

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)


def parse_cgi(response: Response) -> Response:
    head, _, response.body = response.stdout.partition(b"\r\n\r\n")
    for line in head.decode("latin-1").split("\r\n"):
        name, _, value = line.partition(":")
        value = value.strip()
        if name.lower() == "status":
            response.status = int(value.split(" ")[0])
        elif name:
            response.headers.append((name, value))
    return response


def read_exact(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise EOFError("the app closed the connection")
        data += chunk
    return data


def read_response(sock: socket.socket, request_id: int = 1) -> Response:
    response = Response()
    while True:
        try:
            header = read_exact(sock, 8)
        except EOFError:
            if not (response.stdout or response.stderr):
                raise
            response.cut = True
            return parse_cgi(response)
        version, kind, rid, length, padding = struct.unpack(">BBHHBx", header)
        if version == 0 and (response.stdout or response.stderr):
            response.cut = True
            return parse_cgi(response)
        content = read_exact(sock, length + padding)[:length]
        assert rid == request_id, f"record for request {rid}"
        if kind == STDOUT:
            response.stdout += content
        elif kind == STDERR:
            response.stderr += content
        elif kind == END_REQUEST:
            response.app_status, response.protocol_status = struct.unpack(">IB3x", content)
            return parse_cgi(response)


def default_params(uri: str = "/", method: str = "GET", body: bytes = b"") -> dict[str, bytes | str]:
    path, _, query = uri.partition("?")
    return {
        "REQUEST_METHOD": method,
        "REQUEST_URI": uri,
        "SCRIPT_NAME": "",
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "CONTENT_LENGTH": str(len(body)),
    }


def request_records(
    request_id: int,
    params: dict[str, bytes | str],
    stdin: bytes,
    keep_conn: bool = False,
    role: int = RESPONDER,
    data: bytes | None = None,
) -> bytes:
    """BEGIN_REQUEST, the params and the body of one request, each stream ended; with `data`,
    a Filter's data stream after the body (as the spec orders them)."""
    wire = record(BEGIN_REQUEST, request_id, struct.pack(">HB5x", role, int(keep_conn)))
    wire += stream(PARAMS, request_id, pairs(params)) + stream(STDIN, request_id, stdin)
    return wire if data is None else wire + stream(DATA, request_id, data)


def request(
    address: str,
    uri: str = "/",
    method: str = "GET",
    body: bytes = b"",
    params: dict[str, bytes | str | None] | None = None,
    stdin: bytes | None = None,
    role: int = RESPONDER,
    data: bytes | None = None,
) -> Response:
    """One request over a fresh connection to the Unix socket at ``address``. A param given as
    None is left out."""
    all_params = default_params(uri, method, body)
    all_params.update(params or {})
    all_params = {name: value for name, value in all_params.items() if value is not None}
    wire = request_records(1, all_params, body if stdin is None else stdin, role=role, data=data)
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(30)
        sock.connect(address)
        sock.sendall(wire)
        return read_response(sock)

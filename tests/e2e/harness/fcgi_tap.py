"""A transparent FastCGI relay that notes which request ids travel on which connection.

The web server connects to the tap's Unix socket; each connection is relayed byte for byte to
the app's socket on a fresh connection. The tap reads the record headers going by (8 bytes:
version, type, request id, content length, padding) without changing anything, and keeps per
connection: the ids that began (BEGIN_REQUEST from the server), the ids that ended
(END_REQUEST from the app), the most requests in flight at once, and the GET_VALUES_RESULT the
app sent. That is what "the server multiplexes" means on the wire: several request ids begun on
one connection before the first of them ended.
"""

from __future__ import annotations

import socket
import struct
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

BEGIN_REQUEST = 1
END_REQUEST = 3
GET_VALUES_RESULT = 10
HEADER = struct.Struct(">BBHHBx")
CHUNK = 256 * 1024


@dataclass
class Tapped:
    """What one relayed connection carried."""

    begun: list[int] = field(default_factory=list)
    ended: list[int] = field(default_factory=list)
    most_in_flight: int = 0
    get_values_result: bytes = b""
    _in_flight: set[int] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def begin(self, request_id: int) -> None:
        with self._lock:
            self.begun.append(request_id)
            self._in_flight.add(request_id)
            self.most_in_flight = max(self.most_in_flight, len(self._in_flight))

    def end(self, request_id: int) -> None:
        with self._lock:
            self.ended.append(request_id)
            self._in_flight.discard(request_id)


class _Records:
    """Walks a byte stream record by record, calling `on_record(type, id, content)` for each
    record whose content it keeps (`keep`), `on_record(type, id, b"")` for the others."""

    def __init__(self, on_record, keep: frozenset[int]):
        self.on_record = on_record
        self.keep = keep
        self.buffer = bytearray()
        self.skip = 0

    def feed(self, data: bytes) -> None:
        view = memoryview(data)
        if self.skip:
            taken = min(self.skip, len(view))
            self.skip -= taken
            view = view[taken:]
        self.buffer += view
        while len(self.buffer) >= HEADER.size:
            _, kind, request_id, length, padding = HEADER.unpack_from(self.buffer)
            total = HEADER.size + length + padding
            if kind in self.keep:
                if len(self.buffer) < total:
                    return
                self.on_record(kind, request_id, bytes(self.buffer[HEADER.size : HEADER.size + length]))
                del self.buffer[:total]
                continue
            self.on_record(kind, request_id, b"")
            if len(self.buffer) >= total:
                del self.buffer[:total]
            else:
                self.skip = total - len(self.buffer)
                self.buffer.clear()
                return


class FcgiTap:
    """Listens on `path` and relays every connection to `upstream` (both Unix sockets)."""

    def __init__(self, path: Path, upstream: Path):
        self.path = path
        self.upstream = upstream
        self.connections: list[Tapped] = []
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._threads: list[threading.Thread] = []
        self._closing = False

    def __enter__(self) -> Self:
        self._listener.bind(str(self.path))
        self._listener.listen(64)
        self._spawn(self._accept)
        return self

    def __exit__(self, *exc: object) -> None:
        self._closing = True
        self._listener.close()

    def _spawn(self, target, *args) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _accept(self) -> None:
        while not self._closing:
            try:
                server_side, _ = self._listener.accept()
            except OSError:
                return
            app_side = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                app_side.connect(str(self.upstream))
            except OSError:
                server_side.close()
                app_side.close()
                continue
            tapped = Tapped()
            self.connections.append(tapped)

            def from_server(kind: int, request_id: int, _content: bytes, tapped=tapped) -> None:
                if kind == BEGIN_REQUEST:
                    tapped.begin(request_id)

            def from_app(kind: int, request_id: int, content: bytes, tapped=tapped) -> None:
                if kind == END_REQUEST:
                    tapped.end(request_id)
                elif kind == GET_VALUES_RESULT:
                    tapped.get_values_result = content

            upward = _Records(from_server, frozenset())
            downward = _Records(from_app, frozenset({GET_VALUES_RESULT}))
            self._spawn(_relay, server_side, app_side, upward, downward)


def _relay(server_side: socket.socket, app_side: socket.socket, upward: _Records, downward: _Records) -> None:
    """Both directions until both ends are done, then closes both sockets."""
    back = threading.Thread(target=_pump, args=(app_side, server_side, downward), daemon=True)
    back.start()
    _pump(server_side, app_side, upward)
    back.join()
    server_side.close()
    app_side.close()


def _pump(source: socket.socket, sink: socket.socket, records: _Records) -> None:
    """Copies `source` to `sink` until `source` ends, then passes the end on."""
    try:
        while data := source.recv(CHUNK):
            records.feed(data)
            sink.sendall(data)
    except OSError:
        pass
    finally:
        for sock, how in ((sink, socket.SHUT_WR), (source, socket.SHUT_RD)):
            try:
                sock.shutdown(how)
            except OSError:
                pass


def get_values_pairs(content: bytes) -> dict[bytes, bytes]:
    """The name-value pairs of a GET_VALUES_RESULT body (short lengths only: these are)."""
    pairs, i = {}, 0
    while i < len(content):
        name_len, value_len = content[i], content[i + 1]
        i += 2
        pairs[content[i : i + name_len]] = content[i + name_len : i + name_len + value_len]
        i += name_len + value_len
    return pairs

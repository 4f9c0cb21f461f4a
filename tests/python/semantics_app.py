"""A WSGI app whose routes each exercise one part of PEP 3333, reporting what it saw as JSON."""

from __future__ import annotations

import hashlib
import json
import sys
import threading
import time

import fcgi_wsgi


def as_json(start_response, value, status="200 OK"):
    body = json.dumps(value).encode()
    start_response(status, [("Content-Type", "application/json")])
    return [body]


class ClosingBody:
    """An iterable whose close() leaves a mark in a file, to prove close() was called."""

    def __init__(self, chunks, mark_path):
        self.chunks = chunks
        self.mark_path = mark_path

    def __iter__(self):
        for chunk in self.chunks:
            if chunk is None:
                raise RuntimeError("failure while iterating")
            yield chunk

    def close(self):
        with open(self.mark_path, "w") as mark:
            mark.write("closed")


class Ticker:
    """A thread that counts every 10 ms: it stops counting while a thread holds the GIL and waits."""

    def __init__(self):
        self.ticks = 0
        self.started = threading.Lock()
        self.thread = None

    def start(self):
        with self.started:
            if self.thread is None:
                self.thread = threading.Thread(target=self.run, daemon=True)
                self.thread.start()

    def run(self):
        while True:
            time.sleep(0.01)
            self.ticks += 1


TICKER = Ticker()


def timed_against_ticker(report_path, action):
    """Runs ``action()`` and writes to ``report_path`` how long it took and how far the ticker got meanwhile."""
    TICKER.start()
    time.sleep(0.3)  # let the other request's writer stall first
    ticks, start = TICKER.ticks, time.monotonic()
    try:
        action()
    except OSError:
        pass  # the stalled connection times out: what matters is what the interpreter did meanwhile
    finally:
        seen = {"seconds": time.monotonic() - start, "ticks": TICKER.ticks - ticks}
        with open(report_path, "w") as report:
            json.dump(seen, report)


def sha256_in_pieces(stream, piece=65536):
    """Reads `stream` to its end in pieces of `piece` bytes: its length and SHA-256."""
    sha, length = hashlib.sha256(), 0
    while chunk := stream.read(piece):
        sha.update(chunk)
        length += len(chunk)
    return {"length": length, "sha256": sha.hexdigest()}


def digest(start_response, data):
    return as_json(start_response, {"length": len(data), "sha256": hashlib.sha256(data).hexdigest()})


def waits_on_a_slow_backend(seconds):
    """A view stuck in a call: the slow-request log must name this function."""
    time.sleep(seconds)


def app(environ, start_response):
    path = environ["PATH_INFO"]
    query = environ.get("QUERY_STRING", "")
    if path == "/server_stats":
        return as_json(start_response, fcgi_wsgi.server_stats())
    if path == "/slow_view":
        waits_on_a_slow_backend(float(query or "1"))
        return as_json(start_response, {"slept": float(query or "1")})
    if path == "/environ":
        report = {k: v for k, v in environ.items() if isinstance(v, str)}
        report["types"] = sorted({type(v).__name__ for k, v in environ.items() if not k.startswith(("wsgi.", "fcgi."))})
        for key in ("wsgi.url_scheme", "wsgi.multithread", "wsgi.multiprocess", "wsgi.run_once"):
            report[key] = environ[key]
        report["wsgi.version"] = list(environ["wsgi.version"])
        report["has_file_wrapper"] = callable(environ.get("wsgi.file_wrapper"))
        report["dict_bytes"] = sys.getsizeof(environ)
        return as_json(start_response, report)
    # The input routes read `wsgi.input`, or with ?data the Filter's data stream.
    stream_key = "fcgi.data" if query == "data" else "wsgi.input"
    if path == "/input":
        stream = environ[stream_key]
        seen = {
            "read3": stream.read(3).decode(),
            "readline": stream.readline().decode(),
            "readline2": stream.readline(2).decode(),
            "readlines": [line.decode() for line in stream.readlines()],
            "after_end": stream.read().decode(),
        }
        return as_json(start_response, seen)
    if path == "/input_iter":
        return as_json(start_response, [line.decode() for line in environ[stream_key]])
    if path == "/input_all":
        return as_json(start_response, {"body": environ[stream_key].read().decode()})
    if path == "/readline_digest":
        return digest(start_response, environ["wsgi.input"].readline())
    if path == "/iter_digest":
        return digest(start_response, b"".join(line for line in environ["wsgi.input"]))
    if path == "/input_caught":
        try:
            body = environ[stream_key].read()
        except OSError as error:
            return as_json(start_response, {"error": type(error).__name__, "message": str(error)})
        return as_json(start_response, {"body": body.decode()})
    if path == "/role":
        seen = {"role": environ["FCGI_ROLE"], "data": environ["fcgi.data"].read().decode()}
        seen["body"] = environ["wsgi.input"].read().decode()
        return as_json(start_response, seen)
    if path == "/filter":
        # As a Filter reads: the body first (the protocol sends it first), then the file in pieces.
        body, data = sha256_in_pieces(environ["wsgi.input"]), sha256_in_pieces(environ["fcgi.data"])
        return as_json(start_response, {"body": body, "data": data, "data_length": environ.get("FCGI_DATA_LENGTH")})
    if path == "/filter_data_first":
        data = environ["fcgi.data"].read()
        body = environ["wsgi.input"].read()
        return as_json(start_response, {"data": data.decode(), "body": body.decode()})
    if path == "/authorize":
        # An authorizer: 200 and Variable-* headers allow; any other answer goes to the client.
        if environ.get("HTTP_COOKIE") == "user=alice":
            start_response("200 OK", [("Variable-REMOTE_USER", "alice"), ("Variable-PLAN", "gold")])
            return []
        start_response(
            "401 Unauthorized", [("WWW-Authenticate", 'Cookie realm="test"'), ("Content-Type", "text/plain")]
        )
        return [b"log in first\n"]
    if path == "/big":
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return [b"x" * (int(query) << 20)]
    if path == "/small_writes":
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        timed_against_ticker(query, lambda: write(b"small"))
        return []
    if path == "/errors_during_stall":
        # Another thread of this request stalls in a large write; this one logs a line meanwhile.
        write = start_response("200 OK", [("Content-Type", "application/octet-stream")])

        def stall():
            try:
                write(b"x" * (8 << 20))
            except OSError:
                pass

        writer = threading.Thread(target=stall)
        writer.start()
        timed_against_ticker(query, lambda: environ["wsgi.errors"].write("a line\n"))
        writer.join()
        return []
    if path == "/errors":
        environ["wsgi.errors"].write("one line\n")
        environ["wsgi.errors"].writelines(["two\n", "three\n"])
        environ["wsgi.errors"].flush()
        return as_json(start_response, "logged")
    if path == "/write":
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"a")
        write(b"b")
        return [b"c"]
    if path == "/exc_info_before":
        start_response("200 OK", [("Content-Type", "text/plain")])
        try:
            raise ValueError("changed my mind")
        except ValueError:
            start_response("503 Service Unavailable", [("Content-Type", "text/plain")], sys.exc_info())
        return [b"replaced"]
    if path == "/exc_info_after":
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"partial")
        try:
            raise ValueError("too late")
        except ValueError:
            start_response("500 Internal Server Error", [], sys.exc_info())
        return [b"never"]
    if path == "/close":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return ClosingBody([b"x", b"y"], query)
    if path == "/close_on_error":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return ClosingBody([b"", None], query)
    if path == "/file":
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return environ["wsgi.file_wrapper"](open(query, "rb"), 4096)
    if path == "/raise":
        raise RuntimeError("the app failed on purpose")
    if path == "/bad_header":
        start_response("200 OK", [("X-Injected", "a\r\nSet-Cookie: evil=1")])
        return [b"no"]
    if path == "/not_latin1":
        start_response("200 OK", [("X-Name", "snowman \u2603")])
        return [b"no"]
    if path == "/start_twice":
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        if query == "after":
            write(b"sent, ")
        try:
            start_response("201 Created", [])
        except AssertionError:
            return [b"refused"]
        return [b"accepted"]
    if path == "/headers_not_a_list":
        headers = (("X-From", "a tuple"),) if query == "tuple" else (pair for pair in [("X-From", "a generator")])
        start_response("200 OK", headers)
        return [b"ok"]
    if path == "/surrogate_header":
        start_response("200 OK", [("X-Name", "lone \udcff")])
        return [b"no"]
    if path == "/bytes_header":
        start_response("200 OK", [(b"X-Name", "bytes, not str")])
        return [b"no"]
    if path == "/latin1":
        start_response("200 OK", [("X-Name", "caf\u00e9")])
        return [b"yes"]
    if path == "/str_body":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return ["text, not bytes"]
    if path == "/single":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"twelve bytes"]
    if path == "/generator":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return (chunk for chunk in [b"gen", b"", b"erated"])
    if path == "/empty":
        start_response("204 No Content", [])
        return []
    return as_json(start_response, "no such route", "404 Not Found")

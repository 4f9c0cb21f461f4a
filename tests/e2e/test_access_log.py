"""The access log through real nginx, on every face: one line per request, whatever its end,
with the true status and duration, written from a buffer within a second and never lost at a
stop.

Each echo app runs with `--access-logfile FILE --access-logformat FMT --max-body-bytes 1000`
(the Rust and C echoes pass them to their setters, the Python echo to `serve_wsgi`, the libfcgi
program's echo to fcgi-compat's FCGI_COMPAT_* variables). Requests: a 200, the app's own 404 and
500, a 413 the server answers itself, a POST whose body bytes are counted, and one whose client
leaves before the answer (nginx then closes the FastCGI connection: logged 499, as nginx does).
Beside it, the slow-request log of the Python echo, with the stack of the request's thread.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .harness import client, selection
from .harness.apps import App
from .harness.fronts import FRONTS, Front

APPS = ("rust-echo", "python-echo", "asgi-echo", "c-echo", "compat-echo")
FORMAT = '%(s)s %(D)s %(I)s %(B)s "%(r)s" %(p)s'
MAX_BODY = 1000


pytest_generate_tests, logging_app = selection.module_apps("nginx", logging_app=APPS)


@pytest.fixture
def logged_front(logging_app: App, make_workdir) -> Iterator[tuple[Front, Path]]:
    """nginx in front of the app, the app writing its access log into the work directory."""
    workdir = make_workdir(f"access-{logging_app.name}")
    access_log = workdir / "access.log"
    flags = ("--access-logfile", str(access_log), "--access-logformat", FORMAT, "--max-body-bytes", str(MAX_BODY))
    app = dataclasses.replace(logging_app, argv=(*logging_app.argv, *flags))
    with FRONTS["nginx"](app, workdir) as front:
        yield front, access_log


def read_lines(path: Path, count: int, timeout: float = 5.0) -> list[list[str]]:
    """The log's lines once it has `count` (split into the FORMAT's fields), or what it has at the
    timeout."""
    deadline = time.monotonic() + timeout
    while True:
        lines = path.read_text().splitlines() if path.exists() else []
        if len(lines) >= count or time.monotonic() > deadline:
            return [parse(line) for line in lines]
        time.sleep(0.05)


def parse(line: str) -> list[str]:
    """`STATUS MICROS BYTES_IN BODY_BYTES "REQUEST LINE" <PID>` as its six fields."""
    head, request_line, pid = line.split('"')
    return [*head.split(), request_line, pid.strip()]


def leave_early(front: Front, path: str, after: float) -> None:
    """Sends a GET for `path` and closes the connection after `after` seconds, unanswered."""
    with socket.create_connection((front.host, front.port), timeout=10) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: test\r\n\r\n".encode())
        time.sleep(after)


def test_every_request_gets_one_line_with_its_true_status_and_duration(logged_front) -> None:
    front, access_log = logged_front
    app_pid = str(front.backends[0].process.pid)
    leave_early(front, front.url("/slow?ms=1500"), after=0.3)
    expected = {
        front.url("/hello"): ("GET", None, 200),
        front.url("/status/404"): ("GET", None, 404),
        front.url("/status/500"): ("GET", None, 500),
        front.url("/echo"): ("POST", b"b" * 500, 200),
        front.url("/echo?too=large"): ("POST", b"x" * (MAX_BODY + 1), 413),
    }
    for path, (method, body, status) in expected.items():
        assert client.request(front, method, path, body).status == status, path
    lines = read_lines(access_log, len(expected) + 1, timeout=10)
    assert len(lines) == len(expected) + 1, "\n".join(" ".join(line) for line in lines)
    by_path = {line[4].split()[1]: line for line in lines}
    for path, (method, body, status) in expected.items():
        logged_status, micros, bytes_in, body_bytes, request_line, pid = by_path[path]
        assert (logged_status, request_line) == (str(status), f"{method} {path} HTTP/1.1"), lines
        assert pid == f"<{app_pid}>", lines
        assert 0 < int(micros) < 10_000_000
        # The body is counted as the app reads it; a refused one is never read.
        assert int(bytes_in) == (len(body) if body and status == 200 else 0), lines
    # %(B)s counts the body only, not the CGI head.
    hello = client.get(front, front.url("/hello")).body
    assert by_path[front.url("/hello")][3] == str(len(hello)), lines
    left = by_path[front.url("/slow?ms=1500")]
    # It ran at least until the client left (an app that watches for the abort stops then; one
    # that sleeps on finds nobody to answer after its 1.5 s).
    assert left[0] == "499" and int(left[1]) >= 250_000, left


def test_lines_buffered_at_a_stop_are_written(logged_front) -> None:
    """Five requests, then SIGTERM at once (well within the second the buffer may wait): the
    five lines are in the file when the app has exited."""
    front, access_log = logged_front
    for _ in range(5):
        assert client.get(front, front.url("/hello")).status == 200
    process = front.backends[0].process
    os.kill(process.pid, signal.SIGTERM)
    process.wait(timeout=30)
    lines = access_log.read_text().splitlines()
    assert len(lines) == 5, lines


def test_a_slow_request_is_logged_with_the_function_it_sleeps_in(make_workdir, build_app, request) -> None:
    """`--slow-request-timeout` through nginx: one warning while the request runs, naming the
    request and, in the stack of its thread, the function it sleeps in (the echo's `app`)."""
    app = selection.one_app(request, build_app, "python-echo")
    app = dataclasses.replace(app, argv=(*app.argv, "--slow-request-timeout", "0.3"))
    with FRONTS["nginx"](app, make_workdir("slow-log")) as front:
        assert client.get(front, "/app/slow?ms=1200").status == 200
        said = "".join(path.read_text(errors="replace") for path in front.backends[0].logs().values())
    records = [line for line in said.splitlines() if "[WARNING] slow request:" in line]
    assert len(records) == 1 and "GET /app/slow?ms=1200 has run for" in records[0], said
    stack = said[said.index(records[0]) :]
    assert ", in app\n" in stack and "time.sleep(ms / 1000)" in stack, said

"""ASGI apps through real nginx: Starlette, FastAPI and Django's async stack
(tests/apps/asgi_frameworks.py) served by `python -m fcgi_wsgi --interface asgi`.

JSON and a 10 MiB form upload (sha256) both ways; a streamed response delivered piece by piece
(the second piece is sent only once the test has the first: nginx `fastcgi_buffering off`); a
client that leaves reaching the app as `http.disconnect`; the lifespan's startup before the first
request, its state in each request, its shutdown at SIGTERM; 1,000 requests each awaiting a
one-second sleep at once in one process. The echo contract's ASGI app runs behind every web
server in test_matrix.py.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
import socket
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from .harness import client, nginx
from .harness.apps import REPO, App
from .harness.backend import Backend
from .harness.fronts import Front
from .harness.net import free_port

pytest.importorskip("starlette", reason="the ASGI framework tests need starlette (tests/requirements.txt)")

APPS = REPO / "tests/apps"
UPLOAD_BYTES = 10 << 20


def framework_app(name: str, *flags: str) -> App:
    """The framework app `name` of asgi_frameworks.py, run by this interpreter (it has them)."""
    argv = (sys.executable, "-m", "fcgi_wsgi", "--chdir", str(APPS), "--interface", "asgi", *flags)
    return App(name=f"asgi-{name}", argv=(*argv, f"asgi_frameworks:{name}"))


@contextmanager
def behind_nginx(app: App, workdir: Path, worker_connections: int = 512) -> Iterator[Front]:
    """nginx in front of `app`: `/app` unbuffered (streams pass through), `/ka` over kept
    FastCGI connections."""
    marks = workdir / "marks"
    marks.mkdir(exist_ok=True)
    os.environ["ASGI_TEST_MARKS"] = str(marks)
    sock = workdir / "app.sock"
    upstreams = nginx.upstream("app_keepalive", [sock], keepalive=8)
    locations = nginx.location("/app", nginx.target(sock), buffering=False) + nginx.location(
        "/ka", "app_keepalive", keep_conn=True
    )
    with (
        Backend(app, sock, workdir) as backend,
        nginx.Nginx(workdir, free_port(), upstreams, locations, worker_connections) as server,
    ):
        yield Front(app.name, app, "/app", server, [backend])


def marks_of(front: Front) -> Path:
    return Path(os.environ["ASGI_TEST_MARKS"])


def wait_for(path: Path, within: float = 20.0) -> bool:
    deadline = time.monotonic() + within
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return path.exists()


def multipart(fields: dict[str, str], name: str, filename: str, content: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n{value}\r\n'.encode()
        for key, value in fields.items()
    ]
    head = f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
    parts.append(head.encode() + b"Content-Type: application/octet-stream\r\n\r\n" + content + b"\r\n")
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def streamed(front: Front, path: str, go_on: Path) -> list[bytes]:
    """GETs `path`, reading the chunked body piece by piece; once the first piece is in, leaves
    the mark that lets the app send the next."""
    with socket.create_connection(front.server.address, timeout=30) as conn:
        conn.sendall(f"GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode())
        received = b""
        while b"first\n" not in received:
            data = conn.recv(65536)
            assert data, f"the connection closed before the first piece: {received!r}"
            received += data
        first = received
        go_on.write_text("go\n")
        while data := conn.recv(65536):
            received += data
    return [first, received]


@pytest.fixture(scope="module")
def starlette_front(make_workdir) -> Iterator[Front]:
    with behind_nginx(framework_app("starlette"), make_workdir("asgi-starlette")) as front:
        yield front


def test_starlette_json_and_lifespan_state(starlette_front: Front) -> None:
    response = client.get(starlette_front, "/app/json?x=1&y=two")
    assert response.status == 200, response
    assert json.loads(response.body) == {"method": "GET", "query": {"x": "1", "y": "two"}, "path": "/app/json"}
    kept = client.get(starlette_front, "/ka/state")
    assert (kept.status, kept.body) == (200, b"hello from the lifespan"), kept
    startup = marks_of(starlette_front) / "startup"
    assert startup.read_text().strip() == str(starlette_front.backends[0].process.pid), "startup ran in the server"


def test_starlette_form_upload_of_ten_mebibytes(starlette_front: Front) -> None:
    content = os.urandom(UPLOAD_BYTES)
    body, content_type = multipart({"name": "blob"}, "file", "blob.bin", content)
    response = client.request(starlette_front, "POST", "/ka/upload", body, {"Content-Type": content_type})
    assert response.status == 200, response
    assert response.body.decode() == f"blob {UPLOAD_BYTES} {hashlib.sha256(content).hexdigest()}"


def test_starlette_streams_piece_by_piece(starlette_front: Front) -> None:
    go_on = marks_of(starlette_front) / "go-on"
    go_on.unlink(missing_ok=True)
    first, whole = streamed(starlette_front, "/app/stream", go_on)
    assert b"second\n" not in first, "the second piece came before the test let it"
    assert whole.endswith(b"first\n\r\n7\r\nsecond\n\r\n0\r\n\r\n"), whole


def test_a_client_that_leaves_reaches_the_app_as_http_disconnect(starlette_front: Front) -> None:
    gone = marks_of(starlette_front) / "disconnected"
    gone.unlink(missing_ok=True)
    with socket.create_connection(starlette_front.server.address, timeout=10) as conn:
        conn.sendall(b"GET /app/disconnect HTTP/1.1\r\nHost: localhost\r\n\r\n")
        time.sleep(0.5)
    assert wait_for(gone), "the app never saw http.disconnect"
    assert client.get(starlette_front, "/app/json").status == 200


def test_fastapi_json_and_upload(make_workdir) -> None:
    pytest.importorskip("fastapi")
    with behind_nginx(framework_app("fastapi"), make_workdir("asgi-fastapi")) as front:
        response = client.get(front, "/app/items/42?q=answer")
        assert (response.status, json.loads(response.body)) == (200, {"item_id": 42, "q": "answer"}), response
        item = json.dumps({"name": "thing", "price": 10}).encode()
        response = client.request(front, "POST", "/ka/items", item, {"Content-Type": "application/json"})
        assert json.loads(response.body) == {"name": "thing", "price_with_tax": 12.0}, response
        response = client.request(front, "POST", "/ka/items", b"{}", {"Content-Type": "application/json"})
        assert response.status == 422, response
        content = os.urandom(UPLOAD_BYTES)
        body, content_type = multipart({"name": "upload"}, "file", "u.bin", content)
        response = client.request(front, "POST", "/app/upload", body, {"Content-Type": content_type})
        sha = hashlib.sha256(content).hexdigest()
        assert json.loads(response.body) == {"name": "upload", "size": UPLOAD_BYTES, "sha256": sha}, response


def test_django_async_view_and_streaming_response(make_workdir) -> None:
    pytest.importorskip("django")
    with behind_nginx(framework_app("django"), make_workdir("asgi-django")) as front:
        response = client.get(front, "/app/hello")
        assert (response.status, response.body) == (200, b"async view, GET /app/hello"), response
        go_on = marks_of(front) / "go-on"
        go_on.unlink(missing_ok=True)
        first, whole = streamed(front, "/app/stream", go_on)
        assert b"second\n" not in first, "the second piece came before the test let it"
        assert b"first\n" in whole and b"second\n" in whole, whole


def test_the_lifespan_shuts_down_at_sigterm(make_workdir) -> None:
    with behind_nginx(framework_app("starlette"), make_workdir("asgi-lifespan")) as front:
        marks = marks_of(front)
        assert client.get(front, "/app/state").body == b"hello from the lifespan"
        process = front.backends[0].process
        pid = process.pid
        os.kill(pid, signal.SIGTERM)
        assert wait_for(marks / "shutdown"), "the lifespan's shutdown did not run"
        assert (marks / "shutdown").read_text().strip() == str(pid)


async def _get_all(address: tuple[str, int], path: str, count: int) -> list[bytes]:
    async def one() -> bytes:
        reader, writer = await asyncio.open_connection(*address)
        writer.write(f"GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode())
        data = await reader.read()
        writer.close()
        return data.split(b"\r\n", 1)[0]

    return await asyncio.gather(*(one() for _ in range(count)))


def test_a_thousand_slow_requests_at_once_in_one_process(make_workdir) -> None:
    app = framework_app("starlette", "--max-concurrency", "1000")
    with behind_nginx(app, make_workdir("asgi-thousand"), worker_connections=4096) as front:
        assert client.get(front, "/app/sleep?s=0").status == 200
        started = time.monotonic()
        lines = asyncio.run(_get_all(front.server.address, "/app/sleep?s=1", 1000))
        took = time.monotonic() - started
    assert lines.count(b"HTTP/1.1 200 OK") == 1000, sorted(set(lines))
    # Concurrency, not speed: one at a time would take 1,000 s, four at a time 250 s.
    assert took < 3.0, f"1,000 one-second requests took {took:.1f} s"

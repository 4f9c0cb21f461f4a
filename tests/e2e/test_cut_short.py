"""A response cut short by an app failure must look cut short to the HTTP client.

The app writes its headers (no Content-Length) and N bytes, then fails (`/fail?after=N`: the Rust
echo's handler returns an error, the Python echo's iterable raises). The core then sends a record
header no FastCGI peer accepts (version 0) and closes the connection, without END_REQUEST. nginx
fails the response ("upstream sent unsupported FastCGI protocol version: 0") and closes the
chunked response without its last chunk: curl gets the N bytes and exits 18. Without the bad
header, nginx's default (no `fastcgi_keep_conn`) would take the close for the end of the response
and end the chunked body properly, so the client could not tell; both locations are tested.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from .harness import logs, selection
from .harness.apps import App
from .harness.fronts import FRONTS, Front

APPS = ("rust-echo", "python-echo", "asgi-echo")
CURL_PARTIAL_FILE = 18
CURL_EMPTY_REPLY = 52
TRUNCATED = "transfer closed with outstanding read data remaining"
CUT_SHORT = b"upstream sent unsupported FastCGI protocol version: 0"


pytest_generate_tests, cut_app = selection.module_apps("nginx", cut_app=APPS)


@pytest.fixture(scope="module")
def nginx_front(cut_app: App, make_workdir):
    with FRONTS["nginx"](cut_app, make_workdir(f"cut-{cut_app.name}")) as front:
        yield front


def curl(front: Front, path: str, out: Path) -> tuple[int, str, str, bytes]:
    """GET over HTTP/1.1: (curl's exit status, `HTTP_CODE`, its stderr, the body received)."""
    done = subprocess.run(
        ["curl", "-sS", "--http1.1", "--max-time", "60", "-o", out, "-w", "%{http_code}"]
        + [f"http://{front.host}:{front.port}{path}"],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    return done.returncode, done.stdout, done.stderr, out.read_bytes() if out.exists() else b""


@pytest.mark.parametrize(("location", "after"), [("/ka", 10), ("/ka", 100_000), ("/app", 10), ("/app", 100_000)])
def test_failure_after_first_bytes_is_a_truncated_response(
    nginx_front: Front, tmp_path: Path, location: str, after: int
) -> None:
    """`LOCATION/fail?after=N` through nginx, with keep-conn (`/ka`) and without (`/app`): a 200
    whose chunked body stops within the N bytes the app wrote, without its last chunk (curl exit
    18, "transfer closed with outstanding read data remaining"), or, when nginx had sent nothing
    yet, no response at all (curl exit 52); never curl exit 0. nginx's error log says why."""
    path = f"{location}/fail?after={after}"
    status, code, stderr, body = curl(nginx_front, path, tmp_path / "body")
    # Never a whole-looking response: either the headers went out and the body stops short
    # (curl 18), or nginx had not sent anything yet and closes the client's connection (curl 52).
    if status == CURL_EMPTY_REPLY:
        assert (code, body) == ("000", b""), stderr
    else:
        assert (status, code) == (CURL_PARTIAL_FILE, "200"), stderr
        assert TRUNCATED in stderr
        assert body == b"f" * len(body) and len(body) <= after, f"{len(body)} bytes"
    logged = logs.wait_for([nginx_front.server.error_log], f"GET {path} ".encode(), timeout=10)
    assert logged is not None, "nginx logged nothing about the request"
    lines = [line for line in logs.lines_with(logged, CUT_SHORT) if f"GET {path} ".encode() in line]
    assert lines, f"no '{CUT_SHORT.decode()}' line for {path} in nginx's error log"


def test_whole_response_through_the_same_path_is_complete(nginx_front: Front, tmp_path: Path) -> None:
    """The control: `/ka/big?n=100000` through the same location ends normally (curl exit 0) with
    every byte (byte i is i % 251)."""
    status, code, stderr, body = curl(nginx_front, "/ka/big?n=100000", tmp_path / "body")
    assert (status, code, stderr) == (0, "200", "")
    assert body == bytes(i % 251 for i in range(100_000))

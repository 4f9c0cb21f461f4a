"""Every web server × every echo app: real HTTP through the server to the app and back."""

from __future__ import annotations

import hashlib
import os
import urllib.parse
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from .harness import client, contract, logs
from .harness.fronts import Front

BIG = 50_000_000
UPLOAD = 10 * 1024 * 1024
CONCURRENT = 50
KEEPALIVE_REQUESTS = 500


@pytest.fixture(scope="session")
def upload() -> bytes:
    return os.urandom(UPLOAD)


def test_hello(front: Front) -> None:
    response = client.get(front, front.url("/hello"))
    assert response.status == 200, response
    assert response.body == contract.HELLO
    assert response.headers["Content-Type"].startswith("text/plain")


def test_unknown_route_is_404(front: Front) -> None:
    response = client.get(front, front.url("/no-such-route"))
    assert response.status == 404, response
    assert response.body == contract.NOT_FOUND


def test_query_string_and_path_info(front: Front) -> None:
    response = client.get(front, front.url("/env/a/b?x=1&y=two%20words"))
    assert response.status == 200, response
    env = contract.parse_env(response.body)
    assert env[b"REQUEST_METHOD"] == b"GET"
    assert env[b"QUERY_STRING"] == b"x=1&y=two%20words"
    assert env[b"REQUEST_URI"] == front.url("/env/a/b?x=1&y=two%20words").encode()
    if front.sends_path_info:
        assert env[b"SCRIPT_NAME"] == front.prefix.encode()
        assert env[b"PATH_INFO"] == b"/env/a/b"
    else:
        # The whole path is the script; a WSGI app's environ has PATH_INFO, empty (PEP 3333).
        assert env[b"SCRIPT_NAME"] == front.url("/env/a/b").encode()
        assert env.get(b"PATH_INFO", b"") == b""


def test_utf8_path_arrives_intact(front: Front) -> None:
    """The URL carries UTF-8 percent-encoded; PATH_INFO is decoded by the server, byte-exact."""
    path = "/env/café/✓ ü"
    quoted = urllib.parse.quote(path)
    response = client.get(front, front.url(quoted + "?q=%C3%A9t%C3%A9"))
    assert response.status == 200, response
    env = contract.parse_env(response.body)
    assert env[b"REQUEST_URI"] == front.url(quoted + "?q=%C3%A9t%C3%A9").encode()
    assert env[b"QUERY_STRING"] == b"q=%C3%A9t%C3%A9"
    if front.sends_path_info:
        assert env[b"PATH_INFO"] == path.encode()


def test_post_10mib_is_echoed_exactly(front: Front, upload: bytes) -> None:
    response = client.request(front, "POST", front.url("/echo"), upload, {"Content-Type": "application/octet-stream"})
    assert response.status == 200, response
    assert len(response.body) == len(upload)
    assert hashlib.sha256(response.body).hexdigest() == hashlib.sha256(upload).hexdigest()


def test_big_response_is_exact(front: Front) -> None:
    got = client.digest(front, front.url(f"/big?n={BIG}"))
    assert got.status == 200
    assert got.length == BIG
    assert got.sha256 == contract.big_sha256(BIG)


@pytest.mark.parametrize("code", [404, 500])
def test_status_codes(front: Front, code: int) -> None:
    response = client.get(front, front.url(f"/status/{code}"))
    assert response.status == code, response
    assert response.body == contract.status_body(code)


def test_two_set_cookie_headers(front: Front) -> None:
    response = client.get(front, front.url("/cookies"))
    assert response.status == 200, response
    assert response.header_values("Set-Cookie") == contract.COOKIES


def test_concurrent_requests(front: Front) -> None:
    """50 requests at once, each with its own body, each answered with that body."""

    def one(i: int) -> tuple[int, int, bool]:
        body = f"request {i} ".encode() * (100 * (i + 1))
        response = client.request(front, "POST", front.url(f"/echo?i={i}"), body)
        return i, response.status, response.body == body

    with ThreadPoolExecutor(CONCURRENT) as pool:
        results = list(pool.map(one, range(CONCURRENT)))
    wrong = [(i, status) for i, status, same in results if status != 200 or not same]
    assert wrong == [], "(request, status) whose answer was wrong"


def test_keepalive_reuses_fastcgi_connections(front: Front) -> None:
    if not front.keeps_connections:
        pytest.skip(f"{front.name} keeps no FastCGI connection open between requests (no KEEP_CONN)")
    before = contract.parse_stats(client.get(front, front.url("/stats")).body)
    with client.Connection(front) as conn:
        for i in range(KEEPALIVE_REQUESTS):
            response = conn.request("GET", front.url("/hello"))
            assert (response.status, response.body) == (200, contract.HELLO), f"request {i}: {response}"
    after = contract.parse_stats(client.get(front, front.url("/stats")).body)
    assert after.requests - before.requests >= KEEPALIVE_REQUESTS
    assert after.connections - before.connections < 50, (before, after)


def test_stderr_reaches_server_log(front: Front) -> None:
    msg = f"e2e-{uuid.uuid4().hex}"
    response = client.get(front, front.url(f"/stderr?msg={msg}"))
    assert (response.status, response.body) == (200, b"ok\n"), response
    line = contract.stderr_line(msg)
    assert logs.wait_for([front.server.error_log], line), f"{line!r} not in {front.server.error_log}"


def test_failing_app_gives_short_500_and_logs_traceback(front: Front) -> None:
    if "fail" not in front.app.extra_routes:
        pytest.skip(f"{front.app.name} has no /fail route (an exception inside the app)")
    response = client.get(front, front.url("/fail"))
    assert response.status == 500, response
    assert len(response.body) < contract.SHORT_500_LIMIT, response
    assert b"Traceback" not in response.body and contract.FAILED not in response.body, response
    log = front.server.error_log
    assert logs.wait_for([log], contract.FAILED), f"{contract.FAILED!r} not in {log}"
    assert logs.count(log, contract.TRACEBACK) >= 1, f"{log} has the error's last line but no traceback"

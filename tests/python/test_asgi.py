"""The ASGI face over the raw FastCGI protocol (tests/python/asgi_semantics_app.py): the scope
built from the params, the body in chunks as the app asks, responses whole, streamed, failed
before their head (500, traceback in FCGI_STDERR), unfinished (500, or cut short without
END_REQUEST), headers that would break the CGI head refused, trailers refused, the web server's
error log, the lifespan's failure stopping the server, and one CGI request."""

from __future__ import annotations

import concurrent.futures
import json
import os
import subprocess
import sys

import pytest
from conftest import HERE, launch, wait_until_listening
from fcgi_client import STDIN, record, request, request_records

ASGI = ("--interface", "asgi")


@pytest.fixture(scope="module")
def asgi_app(tmp_path_factory):
    process, address, log = launch(tmp_path_factory.mktemp("asgi"), *ASGI, app="asgi_semantics_app:app")
    wait_until_listening(process, address, log)
    yield address
    process.terminate()
    assert process.wait(10) == 0, log.read_text()


def test_the_scope_comes_from_the_params(asgi_app) -> None:
    params = {
        "SCRIPT_NAME": "/mount",
        "PATH_INFO": "/caf\xc3\xa9/scope",
        "REQUEST_URI": "/mount/caf%C3%A9/scope?a=1&b",
        "QUERY_STRING": "a=1&b",
        "HTTPS": "on",
        "SERVER_PROTOCOL": "HTTP/2.0",
        "REMOTE_ADDR": "10.1.2.3",
        "REMOTE_PORT": "5555",
        "SERVER_ADDR": "127.0.0.1",
        "SERVER_PORT": "8443",
        "HTTP_X_THING": "thing",
        "CONTENT_TYPE": "application/json",
        "REMOTE_USER": "alice",
        "LATIN": b"\xe9\xff",
    }
    response = request(asgi_app, "/", "POST", b"{}", params=params)
    assert response.status == 200, response
    scope = json.loads(response.body)
    assert scope["type"] == "http" and scope["asgi"] == {"version": "3.0", "spec_version": "2.4"}
    assert (scope["method"], scope["scheme"], scope["http_version"]) == ("POST", "https", "2")
    assert scope["path"] == "/mount/café/scope" and scope["root_path"] == "/mount"
    assert scope["raw_path"] == "/mount/caf%C3%A9/scope" and scope["query_string"] == "a=1&b"
    assert scope["client"] == ["10.1.2.3", 5555] and scope["server"] == ["127.0.0.1", 8443]
    headers = dict(scope["headers"])
    assert headers["x-thing"] == "thing" and headers["content-type"] == "application/json"
    assert headers["content-length"] == "2"
    # Every param as sent, decoded as WSGI decodes them (latin-1): what an authorizer needs.
    assert scope["params"]["REMOTE_USER"] == "alice" and scope["params"]["LATIN"] == "\xe9\xff"
    assert scope["role"] == "RESPONDER"


def test_the_body_comes_in_chunks_as_the_app_asks(asgi_app) -> None:
    body = os.urandom(200_000)
    params = {"REQUEST_URI": "/chunks", "PATH_INFO": "/chunks", "CONTENT_LENGTH": str(len(body))}
    response = request(asgi_app, "/chunks", "POST", body, params=params)
    sizes = json.loads(response.body)
    assert sum(size for size, _ in sizes) == len(body), sizes
    assert all(more for _, more in sizes[:-1]) and sizes[-1][1] is False, sizes
    assert max(size for size, _ in sizes) <= 65535, "one record at a time, never the whole body"


def test_a_streamed_response_and_its_status(asgi_app) -> None:
    response = request(asgi_app, "/stream", params={"PATH_INFO": "/stream"})
    assert (response.status, response.body, response.header("x-streamed")) == (201, b"one two three", "yes")
    assert response.app_status == 0 and not response.cut


def test_an_error_before_the_head_is_a_500_with_the_traceback_in_the_log(asgi_app) -> None:
    response = request(asgi_app, "/raise", params={"PATH_INFO": "/raise"})
    assert response.status == 500 and response.body == b"Internal Server Error\n", response
    assert b"ValueError: raised before the response on purpose" in response.stderr, response.stderr
    assert b"Traceback (most recent call last)" in response.stderr
    assert response.app_status == 1


def test_an_app_that_returns_without_a_response_gets_a_500(asgi_app) -> None:
    response = request(asgi_app, "/nothing", params={"PATH_INFO": "/nothing"})
    assert response.status == 500 and response.app_status == 1, response


def test_a_response_left_unfinished_is_cut_short(asgi_app) -> None:
    response = request(asgi_app, "/half", params={"PATH_INFO": "/half"})
    assert response.cut, "closed without END_REQUEST, so the web server sees it incomplete"
    assert response.body == b"half"


@pytest.mark.parametrize("route", ["/trailers", "/bad-header"])
def test_what_the_cgi_head_cannot_carry_is_refused_with_a_500(asgi_app, route) -> None:
    response = request(asgi_app, route, params={"PATH_INFO": route})
    assert response.status == 500, response
    assert b"Injected" not in response.stdout
    assert b"trailers" in response.stderr or b"line break" in response.stderr, response.stderr


def test_the_error_log_goes_to_fcgi_stderr(asgi_app) -> None:
    response = request(asgi_app, "/errors", params={"PATH_INFO": "/errors"})
    assert (response.body, response.stderr) == (b"logged", b"to the web server's log\n"), response


def test_what_the_app_built_to_start_is_out_of_the_collectors_sight(asgi_app) -> None:
    # gc.freeze() after the lifespan's startup: the collector's passes during requests walk
    # only what requests make (a pass over every module's objects is a latency spike).
    response = request(asgi_app, "/frozen", params={"PATH_INFO": "/frozen"})
    assert response.status == 200 and int(response.body) > 1000, response


def test_body_records_split_anywhere_are_one_body(asgi_app) -> None:
    import socket

    body = b"x" * 100_000
    params = {
        "REQUEST_URI": "/chunks",
        "PATH_INFO": "/chunks",
        "REQUEST_METHOD": "POST",
        "CONTENT_LENGTH": str(len(body)),
    }
    wire = request_records(1, params, b"")[:-8]  # without the empty STDIN that ends the body
    pieces = [record(STDIN, 1, body[i : i + 7000]) for i in range(0, len(body), 7000)] + [record(STDIN, 1)]
    from fcgi_client import read_response

    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(30)
        sock.connect(asgi_app)
        sock.sendall(wire)
        for piece in pieces:
            sock.sendall(piece)
        response = read_response(sock)
    assert sum(size for size, _ in json.loads(response.body)) == len(body)


def test_a_failed_lifespan_startup_stops_the_server_with_its_message(tmp_path) -> None:
    env = {**os.environ, "ASGI_LIFESPAN": "fail"}
    command = [sys.executable, "-m", "fcgi_wsgi", "--chdir", str(HERE), *ASGI, "asgi_semantics_app:app"]
    done = subprocess.run(
        [*command, "--bind", str(tmp_path / "s.sock")], env=env, capture_output=True, timeout=60, text=True
    )
    assert done.returncode != 0
    assert "the database is not there" in done.stderr, done.stderr


def test_lifespan_on_requires_it_and_auto_does_without(tmp_path) -> None:
    env = {**os.environ, "ASGI_LIFESPAN": "unsupported"}
    command = [sys.executable, "-m", "fcgi_wsgi", "--chdir", str(HERE), *ASGI, "asgi_semantics_app:app"]
    on = subprocess.run(
        [*command, "--lifespan", "on", "--bind", str(tmp_path / "on.sock")],
        env=env,
        capture_output=True,
        timeout=60,
        text=True,
    )
    assert on.returncode != 0 and "no lifespan here" in on.stderr, on.stderr
    process = subprocess.Popen([*command, "--bind", str(tmp_path / "auto.sock")], env=env, stderr=subprocess.DEVNULL)
    try:
        wait_until_listening(process, str(tmp_path / "auto.sock"))
        response = request(str(tmp_path / "auto.sock"), "/stream", params={"PATH_INFO": "/stream"})
        assert response.body == b"one two three"
    finally:
        process.terminate()
        assert process.wait(10) == 0


def test_one_cgi_request_runs_in_an_event_loop() -> None:
    env = {"PATH": os.environ["PATH"], "PATH_INFO": "/stream", "REQUEST_METHOD": "GET"}
    command = [sys.executable, "-m", "fcgi_wsgi", "--chdir", str(HERE), *ASGI, "asgi_semantics_app:app"]
    done = subprocess.run(command, env=env, capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(b"Status: 201 Created\r\n") and done.stdout.endswith(b"\r\n\r\none two three")


def test_the_slow_request_log_shows_the_tasks_await_chain(tmp_path) -> None:
    process, address, log = launch(tmp_path, *ASGI, "--slow-request-timeout", "0.2", app="asgi_semantics_app:app")
    try:
        wait_until_listening(process, address, log)
        assert request(address, "/nap", params={"PATH_INFO": "/nap"}).body == b"rested"
    finally:
        process.terminate()
        assert process.wait(10) == 0
    said = log.read_text()
    assert "slow request: GET /nap" in said, said
    assert "in nap_in_a_view" in said and "asyncio.sleep(0.6)" in said, said


def test_requests_end_on_the_loop_while_the_watchdog_logs_and_cancels(tmp_path) -> None:
    # The seam of the loop ending requests itself: the watchdog takes slow requests' stacks
    # (holding the GIL) and cancels those past the timeout, while the loop ends others at a
    # high rate. Neither may wait on the other (a deadlock shows as a client's 30 s timeout),
    # and a cancel reaches only the request that timed out.
    args = ("--slow-request-timeout", "0.001", "--timeout", "0.1", "--timeout-grace", "5")
    process, address, log = launch(tmp_path, *ASGI, *args, app="asgi_semantics_app:app")
    try:
        wait_until_listening(process, address, log)

        def client(n: int) -> list[tuple[str, int, bytes]]:
            seen = []
            for i in range(40):
                path = "/nap" if (n + i) % 10 == 0 else "/stream"
                response = request(address, path, params={"PATH_INFO": path})
                seen.append((path, response.status, response.body))
            return seen

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            seen = [answer for answers in pool.map(client, range(8)) for answer in answers]
        for path, status, body in seen:
            if path == "/nap":
                assert status == 504, (path, status, body)
            else:
                assert (status, body) == (201, b"one two three"), (path, status, body)
        assert request(address, "/stream", params={"PATH_INFO": "/stream"}).status == 201
    finally:
        process.terminate()
        assert process.wait(10) == 0, log.read_text()[-3000:]
    said = log.read_text()
    assert "slow request: GET /nap" in said and "in nap_in_a_view" in said, said[-3000:]
    assert said.count("request timeout: GET /nap") == 32, said[-3000:]

"""The three FastCGI roles seen from a WSGI app: `FCGI_ROLE` in the environ, the Filter's data
stream as `fcgi.data` (the same contract as `wsgi.input`), and an Authorizer's answers, over a
raw FastCGI client (no mainstream web server sends a Filter's DATA)."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import threading

import pytest
from conftest import start
from fcgi_client import AUTHORIZER, FILTER, RESPONDER, default_params, read_response, request, request_records
from test_input import peak_rss


def body_json(response):
    assert response.status == 200, response
    return json.loads(response.body)


def filter_request(address, uri, data, body=b"", declared=True, **kwargs):
    """A Filter request: `body` on STDIN, then `data` on DATA, its size in FCGI_DATA_LENGTH."""
    params = {"FCGI_DATA_LENGTH": str(len(data))} if declared else {}
    params.update(kwargs.pop("params", {}))
    return request(address, uri, "POST", body, params=params, role=FILTER, data=data, **kwargs)


def sha(data: bytes) -> dict:
    return {"length": len(data), "sha256": hashlib.sha256(data).hexdigest()}


@pytest.mark.parametrize(
    ("role", "name", "params"),
    [
        (RESPONDER, "RESPONDER", {}),
        # The web server sends an authorizer no CONTENT_LENGTH, SCRIPT_NAME or PATH_INFO (spec 6.3).
        (AUTHORIZER, "AUTHORIZER", {"CONTENT_LENGTH": None, "SCRIPT_NAME": None}),
        (FILTER, "FILTER", {"FCGI_DATA_LENGTH": "4"}),
    ],
)
def test_fcgi_role_names_the_role_of_begin_request(app, role, name, params):
    data = b"file" if role == FILTER else None
    seen = body_json(request(app, "/role", params=params, role=role, data=data))
    assert seen == {"role": name, "data": "file" if role == FILTER else "", "body": ""}


def test_a_param_named_fcgi_role_does_not_override_the_role(app):
    seen = body_json(request(app, "/role", params={"FCGI_ROLE": "FILTER"}))
    assert seen["role"] == "RESPONDER"


def test_a_responder_has_an_empty_data_stream_even_if_data_records_arrive(app):
    seen = body_json(request(app, "/role", "POST", b"body", data=b"not for a responder"))
    assert seen == {"role": "RESPONDER", "data": "", "body": "body"}


def test_responders_share_an_empty_data_stream_that_no_param_replaces(app):
    """Roles other than Filter get one stream, empty from the start, shared by every request:
    a param named `fcgi.data` does not replace it, and reading it never waits."""
    for _ in range(3):
        seen = body_json(request(app, "/role", params={"fcgi.data": "a param"}, data=b"ignored"))
        assert seen == {"role": "RESPONDER", "data": "", "body": ""}


def test_cgi_mode_is_a_responder(cgi_env):
    done = cgi_env("/role", b"posted", REQUEST_METHOD="POST", FCGI_ROLE="FILTER")
    assert done.returncode == 0, done.stderr
    _, _, body = done.stdout.partition(b"\r\n\r\n")
    assert json.loads(body) == {"role": "RESPONDER", "data": "", "body": "posted"}


@pytest.mark.parametrize("size", [1, 64 * 1024 + 1, 10 * 1024 * 1024], ids=["1B", "64KiB+1", "10MiB"])
def test_filter_reads_its_data_stream_whole(app, size):
    data, body = os.urandom(size), os.urandom(1000)
    seen = body_json(filter_request(app, "/filter", data, body))
    assert seen == {"body": sha(body), "data": sha(data), "data_length": str(size)}


def test_data_stream_read_readline_readlines(app):
    seen = body_json(filter_request(app, "/input?data", b"abcdef\nghij\nkl\nmn"))
    assert seen == {
        "read3": "abc",
        "readline": "def\n",
        "readline2": "gh",
        "readlines": ["ij\n", "kl\n", "mn"],
        "after_end": "",
    }


def test_data_stream_iterates_lines(app):
    assert body_json(filter_request(app, "/input_iter?data", b"a\nb\nc")) == ["a\n", "b\n", "c"]


def test_data_stream_stops_at_fcgi_data_length(app):
    response = filter_request(app, "/input_all?data", b"12345 and bytes past FCGI_DATA_LENGTH", declared=False,
                              params={"FCGI_DATA_LENGTH": "5"})  # fmt: skip
    assert body_json(response) == {"body": "12345"}


def test_data_stream_without_fcgi_data_length_reads_to_its_end(app):
    assert body_json(filter_request(app, "/input_all?data", b"all of it", declared=False)) == {"body": "all of it"}


def test_a_data_stream_shorter_than_fcgi_data_length_is_an_error_the_app_sees(app):
    response = filter_request(app, "/input_caught?data", b"x" * 40, declared=False, params={"FCGI_DATA_LENGTH": "100"})
    assert body_json(response) == {
        "error": "RequestBodyIncomplete",
        "message": "the data stream ended after 40 of its 100 bytes (FCGI_DATA_LENGTH)",
    }


def test_data_read_before_a_small_body_leaves_the_body_whole(app):
    """The body arrives first: reading the data stream first holds the body (up to 1 MiB) for later."""
    seen = body_json(filter_request(app, "/filter_data_first", b"the file", b"the body"))
    assert seen == {"data": "the file", "body": "the body"}


def test_data_read_before_a_large_body_fails_and_the_worker_goes_on(tmp_path):
    """Over 1 MiB of body unread while waiting for the data stream is refused, never buffered."""
    process, address, log = start(tmp_path, "--workers", "1")
    try:
        body = b"b" * (2 << 20)
        params = {**default_params("/filter_data_first", "POST", body), "FCGI_DATA_LENGTH": "4"}
        wire = request_records(1, params, body, role=FILTER, data=b"file")
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(30)
            sock.connect(address)
            # The app may answer before the body is all sent: send from a thread, read here.
            sender = threading.Thread(target=lambda: _send_ignoring_reset(sock, wire))
            sender.start()
            response = read_response(sock)
            sender.join()
        assert response.status == 500, response
        assert b"over 1 MiB of one input stream arrived while reading the other" in response.stderr
        assert body_json(filter_request(address, "/filter_data_first", b"next", b"ok")) == {
            "data": "next",
            "body": "ok",
        }
    finally:
        process.terminate()
        process.wait(10)


def _send_ignoring_reset(sock: socket.socket, wire: bytes) -> None:
    try:
        sock.sendall(wire)
    except OSError:
        pass  # the app answered and closed first: what matters is the answer


def test_data_stream_is_read_as_the_app_consumes_it(tmp_path):
    """Back-pressure: a 64 MiB file read in 64 KiB pieces costs the app a few MiB, not 64."""
    process, address, log = start(tmp_path, "--workers", "1")
    try:
        filter_request(address, "/filter", b"warm up", b"body")
        before = peak_rss(process.pid)
        data = os.urandom(1 << 20) * 64
        seen = body_json(filter_request(address, "/filter", data, b"body"))
        grown = peak_rss(process.pid) - before
        assert seen["data"] == sha(data)
        print(f"peak RSS grew by {grown / (1 << 20):.1f} MiB for a {len(data) >> 20} MiB data stream")
        assert grown < 16 << 20, f"peak RSS grew by {grown} bytes for a data stream of {len(data)}"
    finally:
        process.terminate()
        process.wait(10)


def test_an_authorizer_answer_reaches_the_web_server_as_written(app):
    """200 with Variable-* headers allows (the web server passes them on); other statuses deny."""
    params = {"CONTENT_LENGTH": None, "HTTP_COOKIE": "user=alice"}
    allowed = request(app, "/authorize", params=params, role=AUTHORIZER)
    assert allowed.status == 200, allowed
    assert allowed.header("Variable-REMOTE_USER") == "alice"
    assert allowed.header("Variable-PLAN") == "gold"
    assert allowed.body == b""
    denied = request(app, "/authorize", params={"CONTENT_LENGTH": None}, role=AUTHORIZER)
    assert denied.status == 401, denied
    assert denied.header("WWW-Authenticate") == 'Cookie realm="test"'
    assert denied.header("Variable-REMOTE_USER") is None
    assert denied.body == b"log in first\n"

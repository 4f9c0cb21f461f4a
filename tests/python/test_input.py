"""wsgi.input: one copy of a long line in memory, and a body shorter than CONTENT_LENGTH is an
error the app sees."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from conftest import start
from fcgi_client import request


def peak_rss(pid: int) -> int:
    """VmHWM of the process, in bytes: the most memory it ever had resident."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


@pytest.mark.parametrize("route", ["/readline_digest", "/iter_digest"])
def test_a_long_line_is_held_once_in_memory(tmp_path, route):
    """A newline-free body read with readline() or by iterating costs about its size once, not twice."""
    process, address, log = start(tmp_path, "--workers", "1")
    try:
        request(address, route, "POST", b"warm\nup\n")
        before = peak_rss(process.pid)
        body = bytes(range(256)).replace(b"\n", b"") * ((64 << 20) // 255)
        response = request(address, route, "POST", body)
        grown = peak_rss(process.pid) - before
        assert response.status == 200, response
        assert json.loads(response.body) == {"length": len(body), "sha256": hashlib.sha256(body).hexdigest()}
        print(f"{route}: peak RSS grew by {grown / (1 << 20):.1f} MiB for a {len(body) / (1 << 20):.1f} MiB line")
        assert grown <= 1.3 * len(body), f"peak RSS grew by {grown} bytes for a line of {len(body)}"
    finally:
        process.terminate()
        process.wait(10)


def test_a_body_shorter_than_content_length_is_an_error_the_app_sees(app):
    response = request(app, "/input_caught", "POST", b"x" * 100, stdin=b"x" * 40)
    assert json.loads(response.body) == {
        "error": "RequestBodyIncomplete",
        "message": "the request body ended after 40 of its 100 bytes (CONTENT_LENGTH)",
    }


def test_a_short_body_not_caught_is_a_400_and_the_worker_goes_on(app):
    response = request(app, "/input_all", "POST", b"x" * 100, stdin=b"x" * 40)
    assert response.status == 400
    assert b"the request body ended after 40 of its 100 bytes" in response.body
    assert b"RequestBodyIncomplete" in response.stderr, "the error is logged"
    assert json.loads(request(app, "/input_all", "POST", b"whole").body) == {"body": "whole"}

"""Timeouts mean the same on every face: 0 is no limit, a negative one is refused loudly."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import fcgi_wsgi
import pytest
from conftest import start
from fcgi_client import PARAMS, STDIN, default_params, pairs, read_response, record, stream


@pytest.mark.parametrize("name", ["read_timeout", "write_timeout", "idle_timeout", "head_timeout", "graceful_timeout"])
def test_a_negative_timeout_is_refused(name):
    with pytest.raises(ValueError, match=name):
        fcgi_wsgi.serve_wsgi(lambda environ, start_response: [], "unix:/nonexistent/app.sock", **{name: -1})


def test_the_command_line_refuses_a_negative_timeout(tmp_path):
    here = str(Path(__file__).parent)
    command = [
        sys.executable,
        "-m",
        "fcgi_wsgi",
        "--chdir",
        here,
        "semantics_app:app",
        "--bind",
        str(tmp_path / "a.sock"),
    ]
    result = subprocess.run([*command, "--read-timeout", "-1"], capture_output=True, timeout=30)
    assert result.returncode != 0
    assert b"read_timeout must be 0 (no limit)" in result.stderr


def test_a_read_timeout_of_0_is_no_limit(tmp_path):
    # 0 used to time out at once in Python while it meant "no limit" in C.
    process, address, log = start(tmp_path, "--read-timeout", "0")
    try:
        body = b"x" * 1000
        params = default_params("/input_all", "POST", body)
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(30)
            sock.connect(address)
            sock.sendall(record(1, 1, bytes([0, 1, 0, 0, 0, 0, 0, 0])) + stream(PARAMS, 1, pairs(params)))
            sock.sendall(record(STDIN, 1, body[:500]))
            time.sleep(1.5)
            sock.sendall(record(STDIN, 1, body[500:]) + record(STDIN, 1))
            response = read_response(sock)
        assert response.status == 200, log.read_text()
        assert json.loads(response.body) == {"body": body.decode()}
    finally:
        process.terminate()
        process.wait(10)

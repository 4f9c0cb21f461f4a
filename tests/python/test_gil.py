"""Nothing waits for the web server while holding the GIL: other Python threads run on while a
request is stalled on a web server that does not read."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

from conftest import start
from fcgi_client import default_params, request, request_records


def wait_for_report(path: Path, seconds: float = 15) -> dict:
    deadline = time.monotonic() + seconds
    while not (path.exists() and path.read_text()):
        assert time.monotonic() < deadline, "the app wrote no report"
        time.sleep(0.05)
    return json.loads(path.read_text())


def assert_the_ticker_kept_ticking(seen: dict) -> None:
    # The wait was real (the other writer held the socket until its write timed out)...
    assert seen["seconds"] >= 0.5, seen
    # ...and the ticker, which needs the GIL every 10 ms, went on meanwhile.
    assert seen["ticks"] >= seen["seconds"] / 0.01 / 4, f"the interpreter froze: {seen}"


def test_a_multiplexed_request_never_waits_for_the_connection_holding_the_gil(tmp_path):
    """Request 1 writes 8 MiB to a web server that never reads, stalling on the shared connection;
    request 2, sent once request 1 is stalled, is still read and served, and its small writes on
    that connection wait without the GIL. (The reader used to wait for the stalled writer before
    decoding request 2, which then was never served.)"""
    process, address, log = start(tmp_path, "--multiplex", "2", "--workers", "2", "--write-timeout", "2")
    report = tmp_path / "report.json"
    try:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.connect(address)
            sock.sendall(request_records(1, default_params("/big?8"), b"", keep_conn=True))
            time.sleep(0.5)  # request 1 fills the socket's buffers and stalls, never read
            sock.sendall(request_records(2, default_params(f"/small_writes?{report}"), b"", keep_conn=True))
            seen = wait_for_report(report)  # never reading the socket
        assert_the_ticker_kept_ticking(seen)
        assert request(address, "/single").body == b"twelve bytes", "the process serves on"
    finally:
        process.terminate()
        process.wait(10)


def test_a_thread_of_the_app_stalled_in_a_write_does_not_freeze_the_others(tmp_path):
    """One thread of a request stalls writing to a web server that never reads; another thread of
    the same request writing to wsgi.errors must wait for the request without the GIL."""
    process, address, log = start(tmp_path, "--workers", "2", "--write-timeout", "2")
    report = tmp_path / "report.json"
    try:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.connect(address)
            sock.sendall(request_records(1, default_params(f"/errors_during_stall?{report}"), b""))
            seen = wait_for_report(report)
        assert_the_ticker_kept_ticking(seen)
        assert request(address, "/single").body == b"twelve bytes", "the process serves on"
    finally:
        process.terminate()
        process.wait(10)

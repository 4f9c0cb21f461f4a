"""Pre-forked processes: the app is imported after the fork unless preloaded; a stop signal ends
them all."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from fcgi_client import request

APPS = Path(__file__).resolve().parents[1] / "apps"


def start(tmp_path: Path, *args: str) -> tuple[subprocess.Popen, str]:
    address = str(tmp_path / "app.sock")
    command = [sys.executable, "-m", "fcgi_wsgi", "--chdir", str(APPS), "wsgi_echo:app", "--bind", address, *args]
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while True:
        try:
            with socket.socket(socket.AF_UNIX) as probe:
                probe.connect(address)
            return process, address
        except OSError:
            assert process.poll() is None and time.monotonic() < deadline, "the app did not start"
            time.sleep(0.05)


def imported_by(address: str, requests: int = 80) -> set[tuple[int, int]]:
    """(importer, pid) pairs over `requests` requests from 8 clients at once: with sequential
    requests one process may well take them all, as the kernel wakes whichever waits."""

    def one(_: int) -> tuple[int, int]:
        importer, pid = request(address, "/imported").body.split()
        return int(importer), int(pid)

    with ThreadPoolExecutor(8) as pool:
        return set(pool.map(one, range(requests)))


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.parametrize("preload", [False, True])
def test_processes_share_the_listener(tmp_path, preload):
    process, address = start(tmp_path, "--processes", "2", "--workers", "1", *(["--preload"] if preload else []))
    try:
        seen = imported_by(address)
        for _ in range(10):
            if len({pid for _, pid in seen}) == 2:
                break
            seen |= imported_by(address)
        pids = {pid for _, pid in seen}
        assert len(pids) == 2, seen
        assert process.pid not in pids, "the supervisor serves nothing itself"
        importers = {importer for importer, _ in seen}
        if preload:
            assert importers == {process.pid}, "a preloaded app is imported once, before the fork"
        else:
            assert all(importer == pid for importer, pid in seen), "each process imports the app itself"
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(15) == 0
    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(alive(pid) for pid in pids), "no worker outlives the supervisor"

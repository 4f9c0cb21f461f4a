"""Pre-forked processes: the app is imported after the fork unless preloaded; a stop signal ends
them all. A WSGI app's default pool: a process per core of 2 workers on a bound socket, 1 of 1 on fd 0."""

from __future__ import annotations

import json
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


def sizing(address: str, server: subprocess.Popen) -> tuple[int, int, int]:
    """(processes, workers per process) as the status page counts them, and the server's child
    processes, as /proc lists them."""
    page = json.loads(request(address, "/status?json").body)
    children = Path(f"/proc/{server.pid}/task/{server.pid}/children").read_text().split()
    return page["processes"], page["workers_per_process"], len(children)


def stopped(server: subprocess.Popen) -> None:
    server.send_signal(signal.SIGTERM)
    assert server.wait(15) == 0


CORES = len(os.sched_getaffinity(0))


def test_a_wsgi_app_on_a_bound_socket_gets_a_process_per_core_of_two_workers(tmp_path):
    server, address = start(tmp_path, "--status-path", "/status")
    try:
        assert sizing(address, server) == (CORES, 2, CORES), "the supervisor forks a process per core"
    finally:
        stopped(server)


def test_explicit_processes_and_workers_win_over_the_defaults(tmp_path):
    server, address = start(tmp_path, "--status-path", "/status", "--processes", "1", "--workers", "3")
    try:
        assert sizing(address, server) == (1, 3, 0), "one process, no fork"
    finally:
        stopped(server)


def test_on_fd0_as_under_mod_fcgid_one_process_serves_one_request_at_a_time(tmp_path):
    address = str(tmp_path / "fd0.sock")
    with socket.socket(socket.AF_UNIX) as listener:
        listener.bind(address)
        listener.listen(16)
        command = [sys.executable, "-m", "fcgi_wsgi", "--chdir", str(APPS), "wsgi_echo:app", "--status-path", "/status"]
        server = subprocess.Popen(command, stdin=listener)
    try:
        assert sizing(address, server) == (1, 1, 0), "one process, no fork"
    finally:
        stopped(server)


FAILS_AT_IMPORT_WHEN_MARKED = """
import os
if os.path.exists(os.environ["FAIL_MARK"]):
    raise RuntimeError("told to fail at import")
open(os.environ["FAIL_MARK"] + f".loaded-{os.getpid()}", "w").close()

def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [str(os.getpid()).encode()]
"""


def test_an_app_that_no_worker_can_load_stops_the_pool(tmp_path):
    """Every worker would fail alike (a typo in the app's name): the supervisor stops, non-zero,
    rather than restart workers for ever (gunicorn's "Worker failed to boot")."""
    command = [sys.executable, "-m", "fcgi_wsgi", "--chdir", str(APPS), "no_such_module:app"]
    command += ["--bind", str(tmp_path / "app.sock"), "--processes", "2"]
    ended = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30)
    assert ended.returncode != 0
    assert "No module named 'no_such_module'" in ended.stderr
    assert "could not start serving, and none has yet; stopping" in ended.stderr, ended.stderr
    assert "starting another" not in ended.stderr, ended.stderr


def test_a_worker_that_fails_to_load_once_another_serves_is_tried_again(tmp_path):
    """Once a worker served, a replacement that fails to load (a database down at import) is
    retried while the others serve on: stopping would take the site down with it."""
    (tmp_path / "marked_app.py").write_text(FAILS_AT_IMPORT_WHEN_MARKED)
    mark = tmp_path / "fail"
    address = str(tmp_path / "app.sock")
    command = [sys.executable, "-m", "fcgi_wsgi", "--chdir", str(tmp_path), "marked_app:app", "--bind", address]
    command += ["--processes", "2", "--workers", "1"]
    log = tmp_path / "stderr"
    with log.open("w") as stderr:
        server = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stderr=stderr, env={**os.environ, "FAIL_MARK": str(mark)}
        )
    try:
        # Both workers have loaded the app (each imports it after the fork: one that had not
        # yet would fail too once the mark is there, and nobody would be left to serve).
        deadline = time.monotonic() + 20
        while True:
            workers = Path(f"/proc/{server.pid}/task/{server.pid}/children").read_text().split()
            if len(workers) == 2 and all(Path(f"{mark}.loaded-{pid}").exists() for pid in workers):
                break
            assert time.monotonic() < deadline, "two workers did not load the app"
            time.sleep(0.05)
        assert request(address, "/").status == 200
        mark.touch()
        victim = int(Path(f"/proc/{server.pid}/task/{server.pid}/children").read_text().split()[0])
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while log.read_text().count("told to fail at import") < 2:
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        assert server.poll() is None, "the supervisor stopped"
        assert all(request(address, "/").status == 200 for _ in range(5)), "the other worker serves on"
    finally:
        stopped(server)

"""Starts the semantics app under ``python -m fcgi_wsgi`` on a Unix socket."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

HERE = Path(__file__).parent


def wait_until_listening(process: subprocess.Popen, address: str, log: Path | None = None, within: float = 20) -> None:
    """Returns once `address` accepts a connection; fails if `process` exits or `within` passes."""
    deadline = time.monotonic() + within
    while True:
        try:
            with socket.socket(socket.AF_UNIX) as probe:
                probe.connect(address)
            return
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                said = log.read_text() if log else ""
                raise RuntimeError(f"the app did not start: {said}") from None
            time.sleep(0.05)


def launch(
    folder: Path, *args: str, app: str = "semantics_app:app", chdir: Path = HERE
) -> tuple[subprocess.Popen, str, Path]:
    """``python -m fcgi_wsgi`` serving `app` on ``folder/app.sock``, its stderr in
    ``folder/app.log``; returns at once (it may yet fail)."""
    address = str(folder / "app.sock")
    log = folder / "app.log"
    command = [sys.executable, "-m", "fcgi_wsgi", "--chdir", str(chdir), app, "--bind", address, *args]
    with log.open("wb") as log_file:
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stderr=log_file)
    return process, address, log


def start(tmp_path: Path, *args: str) -> tuple[subprocess.Popen, str, Path]:
    """The semantics app, once it listens."""
    process, address, log = launch(tmp_path, *args)
    wait_until_listening(process, address, log)
    return process, address, log


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    # One process: wsgi.multiprocess is then False (test_wsgi), and one process's state is all.
    process, address, log = start(tmp_path_factory.mktemp("app"), "--workers", "4", "--processes", "1")
    yield address
    process.terminate()
    assert process.wait(10) == 0, log.read_text()


@pytest.fixture(scope="module")
def debug_app(tmp_path_factory):
    process, address, log = start(tmp_path_factory.mktemp("debug"), "--debug")
    yield address
    process.terminate()
    process.wait(10)


@pytest.fixture
def cgi_env():
    def run(path: str, body: bytes = b"", **params: str) -> subprocess.CompletedProcess:
        env = {"PATH": os.environ["PATH"], "PATH_INFO": path, "REQUEST_METHOD": "GET", **params}
        env.update({"CONTENT_LENGTH": str(len(body))} if body else {})
        command = [sys.executable, "-m", "fcgi_wsgi", "--chdir", str(HERE), "semantics_app:app"]
        return subprocess.run(command, input=body, env=env, capture_output=True, timeout=30)

    return run

"""A relative --chdir survives reloads: the re-executed program finds the same folder."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from fcgi_client import request

HERE = Path(__file__).parent


def wait_for(address: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 20
    while True:
        try:
            with socket.socket(socket.AF_UNIX) as probe:
                probe.connect(address)
            return
        except OSError:
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)


def test_a_relative_chdir_survives_a_reload(tmp_path):
    address = str(tmp_path / "app.sock")
    log = tmp_path / "app.log"
    relative = os.path.relpath(HERE, HERE.parent)
    command = [sys.executable, "-m", "fcgi_wsgi", "--chdir", relative, "semantics_app:app", "--bind", address]
    with log.open("wb") as log_file:
        process = subprocess.Popen(command, cwd=HERE.parent, stdin=subprocess.DEVNULL, stderr=log_file)
    try:
        wait_for(address, process, log)
        assert request(address, "/input_all", "POST", b"before").status == 200
        process.send_signal(signal.SIGHUP)
        time.sleep(0.5)
        wait_for(address, process, log)
        response = request(address, "/input_all", "POST", b"after")
        assert response.status == 200, log.read_text()
        assert process.poll() is None, f"the reloaded program exited: {log.read_text()}"
        assert "reloading" in log.read_text()
    finally:
        process.terminate()
        process.wait(10)

"""A relative --chdir survives reloads: the re-executed program finds the same folder."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import wait_until_listening
from fcgi_client import request

HERE = Path(__file__).parent


def test_a_relative_chdir_survives_a_reload(tmp_path):
    address = str(tmp_path / "app.sock")
    log = tmp_path / "app.log"
    relative = os.path.relpath(HERE, HERE.parent)
    command = [sys.executable, "-m", "fcgi_wsgi", "--chdir", relative, "semantics_app:app", "--bind", address]
    with log.open("wb") as log_file:
        process = subprocess.Popen(command, cwd=HERE.parent, stdin=subprocess.DEVNULL, stderr=log_file)
    try:
        wait_until_listening(process, address, log)
        assert request(address, "/input_all", "POST", b"before").status == 200
        process.send_signal(signal.SIGHUP)
        time.sleep(0.5)
        wait_until_listening(process, address, log)
        response = request(address, "/input_all", "POST", b"after")
        assert response.status == 200, log.read_text()
        assert process.poll() is None, f"the reloaded program exited: {log.read_text()}"
        assert "reloading" in log.read_text()
    finally:
        process.terminate()
        process.wait(10)

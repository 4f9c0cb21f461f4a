"""A child process the harness owns: its output goes to a log file, and it is always stopped."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path


class ProcessFailed(RuntimeError):
    """A process exited when it should run, or never got ready."""


class Process:
    """Runs `argv` in its own session so that everything it forks can be stopped with it.

    stdout and stderr both go to `log`, which the harness shows when a test fails.
    """

    def __init__(self, name: str, argv: list[str], log: Path, cwd: Path | None = None):
        self.name = name
        self.argv = [str(a) for a in argv]
        self.log = log
        self.cwd = cwd
        self._popen: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self._popen is not None, f"{self.name} was never started"
        return self._popen.pid

    def start(self) -> Process:
        with open(self.log, "ab") as out:
            self._popen = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.cwd,
                start_new_session=True,
            )
        return self

    def poll(self) -> int | None:
        """The exit status, or None while the process runs."""
        return None if self._popen is None else self._popen.poll()

    def check_running(self) -> None:
        status = self.poll()
        if status is not None:
            raise ProcessFailed(f"{self.name} exited with status {status}")

    def signal(self, signum: int) -> None:
        self.check_running()
        os.kill(self.pid, signum)

    def wait(self, timeout: float) -> int:
        assert self._popen is not None
        return self._popen.wait(timeout)

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM, then SIGKILL after `timeout`; then kill whatever it left in its session.

        Returns the exit status (negative for a signal), None if it was never started.
        """
        if self._popen is None:
            return None
        if self._popen.poll() is None:
            self._popen.send_signal(signal.SIGTERM)
            try:
                self._popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self._popen.kill()
                self._popen.wait()
        try:
            os.killpg(self._popen.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        return self._popen.returncode

"""A process that serves on an address: started, awaited until it listens, always stopped."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Self

from .logs import tail
from .net import Address, wait_listening
from .process import Process, ProcessFailed


class Service:
    """Subclasses set `process`, `address`, and override `logs()` to show more files on failure."""

    process: Process
    address: Address

    def __enter__(self) -> Self:
        self.process.start()
        try:
            wait_listening(self.address, self.process.check_running)
        except (ProcessFailed, TimeoutError) as e:
            self.process.stop()
            raise ProcessFailed(f"did not start: {e}\n{self.report()}") from None
        except BaseException:
            self.process.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.process.stop()

    @property
    def pid(self) -> int:
        return self.process.pid

    def logs(self) -> dict[str, Path]:
        """Label → log file, for failure reports."""
        return {f"{self.process.name} output": self.process.log}

    def report(self) -> str:
        parts = [f"$ {shlex.join(self.process.argv)}"]
        parts += [f"--- {label}: {path} ---\n{tail(path)}" for label, path in self.logs().items()]
        return "\n".join(parts)


class WebServer(Service):
    """A web server: besides its output it writes an error log, where FCGI_STDERR lands."""

    error_log: Path

    def logs(self) -> dict[str, Path]:
        name = self.process.name
        return {f"{name} error log": self.error_log, f"{name} output": self.process.log}

"""What a process holds, read from /proc: resident memory and open descriptors, now and sampled
over time (peaks), for the reliability, soak and memory tests."""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from typing import Self

MIB = 1024 * 1024


@dataclass(frozen=True)
class Usage:
    rss: int
    """VmRSS, in bytes."""
    fds: int

    def __str__(self) -> str:
        return f"RSS {self.rss / MIB:.1f} MiB, {self.fds} fds"


def _status_kib(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
    raise LookupError(f"no {field} in /proc/{pid}/status")


def rss(pid: int) -> int:
    """The resident set size of `pid`, in bytes."""
    return _status_kib(pid, "VmRSS") * 1024


def peak_rss(pid: int) -> int:
    """The kernel's high-water mark of the resident set (VmHWM) since start or `reset_peak`."""
    return _status_kib(pid, "VmHWM") * 1024


def reset_peak(pid: int) -> bool:
    """Resets VmHWM to the current RSS (`echo 5 > /proc/PID/clear_refs`); False if not allowed."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
    except OSError:
        return False
    return True


def fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def usage(pid: int) -> Usage:
    return Usage(rss(pid), fds(pid))


def settled(pid: int, quiet: float = 0.3, timeout: float = 10.0) -> Usage:
    """The usage of `pid` once its descriptor count has held still for `quiet` seconds
    (connections just closed by the web server take a moment to close in the app)."""
    deadline = time.monotonic() + timeout
    last = usage(pid)
    still_since = time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.05)
        now = usage(pid)
        if now.fds != last.fds:
            still_since = time.monotonic()
        last = now
        if time.monotonic() - still_since >= quiet:
            break
    return last


class Sampler:
    """Samples the usage of `pid` every `interval` seconds on a thread, until stopped.

    `mark()` starts a new phase: `peak(phase)` is the largest RSS and fd count seen in it.
    """

    def __init__(self, pid: int, interval: float = 0.02):
        self.pid = pid
        self.interval = interval
        self.samples: list[tuple[int, Usage]] = []
        """(phase, usage) pairs."""
        self.phase = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.samples.append((self.phase, usage(self.pid)))
            except (FileNotFoundError, ProcessLookupError):
                return
            self._stop.wait(self.interval)

    def mark(self) -> int:
        """Starts the next phase; returns its number."""
        self.phase += 1
        return self.phase

    def peak(self, phase: int | None = None) -> Usage:
        """The largest RSS and the largest fd count sampled (in `phase`, or in all)."""
        chosen = [u for p, u in self.samples if phase is None or p == phase]
        if not chosen:
            chosen = [usage(self.pid)]
        return Usage(max(u.rss for u in chosen), max(u.fds for u in chosen))

    def count(self, phase: int | None = None) -> int:
        return sum(1 for p, _ in self.samples if phase is None or p == phase)

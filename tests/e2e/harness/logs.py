"""Reading the log files that servers and apps write: tails for failure reports, and polling."""

from __future__ import annotations

import time
from pathlib import Path

TAIL_BYTES = 16 * 1024


def tail(path: Path, limit: int = TAIL_BYTES) -> str:
    """The last `limit` bytes of a file, decoded leniently; a note if there is no such file."""
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            size = f.tell()
            f.seek(max(0, size - limit))
            data = f.read()
    except FileNotFoundError:
        return f"({path} does not exist)"
    cut = "[...]\n" if size > limit else ""
    return cut + data.decode("utf-8", "backslashreplace") or "(empty)"


def count(path: Path, needle: bytes) -> int:
    try:
        return path.read_bytes().count(needle)
    except FileNotFoundError:
        return 0


def lines_with(path: Path, needle: bytes) -> list[bytes]:
    try:
        return [line for line in path.read_bytes().splitlines() if needle in line]
    except FileNotFoundError:
        return []


def wait_for(paths: list[Path], needle: bytes, timeout: float = 5.0, times: int = 1) -> Path | None:
    """Poll until one of `paths` contains `needle` `times` times; that file, or None at the timeout."""
    deadline = time.monotonic() + timeout
    while True:
        for path in paths:
            if count(path, needle) >= times:
                return path
        if time.monotonic() > deadline:
            return None
        time.sleep(0.1)

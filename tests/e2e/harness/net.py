"""Loopback addresses for servers and apps: free ports, and waiting until something listens."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from pathlib import Path

LOOPBACK = "127.0.0.1"

Address = tuple[str, int] | Path
"""A TCP (host, port) pair or a Unix socket path."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def bind_arg(address: Address) -> str:
    """The app's `--bind` spelling of an address."""
    if isinstance(address, Path):
        return f"unix:{address}"
    host, port = address
    return f"{host}:{port}"


def connectable(address: Address) -> bool:
    family = socket.AF_UNIX if isinstance(address, Path) else socket.AF_INET
    target = str(address) if isinstance(address, Path) else address
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(1.0)
        try:
            s.connect(target)
        except OSError:
            return False
        return True


def wait_listening(address: Address, still_starting: Callable[[], None], timeout: float = 15.0) -> None:
    """Poll until `address` accepts a connection.

    `still_starting` is called between polls and raises if the process that should listen died.
    """
    deadline = time.monotonic() + timeout
    while not connectable(address):
        still_starting()
        if time.monotonic() > deadline:
            raise TimeoutError(f"nothing listens on {address} after {timeout:.0f}s")
        time.sleep(0.05)

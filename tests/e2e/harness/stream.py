"""A steady stream of requests from a few threads, recording every outcome, until stopped."""

from __future__ import annotations

import http.client
import threading
import time
from dataclasses import dataclass
from typing import Self

from . import client

REQUEST_TIMEOUT = 20.0


@dataclass(frozen=True)
class Outcome:
    status: int | None
    """None when the request got no HTTP answer at all (see `error`)."""
    body: bytes = b""
    error: str = ""


class RequestStream:
    """`threads` threads GET `path` in a loop, each on a fresh connection.

    Bounded: every thread stops after `max_seconds` even if nobody stops the stream, and a
    request that gets no answer in `REQUEST_TIMEOUT` counts as failed.
    """

    def __init__(self, origin: client.Origin, path: str, threads: int = 4, max_seconds: float = 60.0):
        self._origin = origin
        self._path = path
        self._deadline = time.monotonic() + max_seconds
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._outcomes: list[Outcome] = []
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def __enter__(self) -> Self:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()

    def _run(self) -> None:
        while not self._stop.is_set() and time.monotonic() < self._deadline:
            try:
                response = client.get(self._origin, self._path, timeout=REQUEST_TIMEOUT)
                outcome = Outcome(response.status, response.body)
            except (OSError, http.client.HTTPException) as e:
                outcome = Outcome(None, error=f"{type(e).__name__}: {e}")
            with self._lock:
                self._outcomes.append(outcome)

    @property
    def outcomes(self) -> list[Outcome]:
        with self._lock:
            return list(self._outcomes)

    def wait_for(self, count: int, timeout: float = 30.0) -> None:
        """Block until at least `count` requests have completed, however they ended."""
        deadline = time.monotonic() + timeout
        while len(self.outcomes) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {len(self.outcomes)} of {count} requests completed in {timeout}s")
            time.sleep(0.05)

    def failures(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status != 200]

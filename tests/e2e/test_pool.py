"""A dynamic pool through real nginx (`--processes MIN:MAX`): processes are started while every
worker is busy and requests wait, and stopped once idle; `0:MAX` starts none until a request
comes.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from .harness import client, selection
from .harness.apps import App
from .harness.fronts import FRONTS, Front


@pytest.fixture(scope="module")
def python_echo(request: pytest.FixtureRequest, build_app) -> App:
    return selection.one_app(request, build_app, "python-echo")


@contextmanager
def served(app: App, workdir: Path, *flags: str) -> Iterator[Front]:
    status = ("--status-path", "/app/fcgi-status", "--workers", "1", "--process-idle-timeout", "1")
    with FRONTS["nginx"](dataclasses.replace(app, argv=(*app.argv, *status, *flags)), workdir) as front:
        yield front


def children(front: Front) -> list[int]:
    """The supervisor's worker processes, from /proc."""
    pid = front.backends[0].process.pid
    return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def wait_until(check, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def slow_requests(front, count: int, ms: int) -> tuple[list[threading.Thread], list[int], float]:
    """`count` requests of `ms` each, sent at once on threads of their own: the threads, the
    list their statuses go to, and when they started."""
    statuses: list[int] = []
    slow = [
        threading.Thread(target=lambda: statuses.append(client.get(front, f"/app/slow?ms={ms}", 60).status))
        for _ in range(count)
    ]
    started = time.monotonic()
    for thread in slow:
        thread.start()
    return slow, statuses, started


def test_the_pool_grows_while_every_worker_is_busy_and_shrinks_when_idle(python_echo, make_workdir) -> None:
    """1:4 under 8 concurrent slow requests of 2 s: four processes, the eight served in two
    rounds, then back to one."""
    with served(python_echo, make_workdir("pool-dynamic"), "--processes", "1:4") as front:
        assert wait_until(lambda: len(children(front)) == 1)
        slow, statuses, started = slow_requests(front, 8, 2000)
        assert wait_until(lambda: len(children(front)) == 4), children(front)
        grew_in = time.monotonic() - started
        page = json.loads(client.get(front, "/app/fcgi-status?json").body)
        assert page["processes"] == 4 and page["active_workers"] == 4, page
        for thread in slow:
            thread.join(60)
        assert statuses == [200] * 8
        # Four at a time: well under the 16 s they would take one after the other.
        assert time.monotonic() - started < 12, "the requests did not run side by side"
        # Idle for a second: back to MIN.
        assert wait_until(lambda: len(children(front)) == 1), children(front)
        print(f"grew to 4 processes {grew_in:.2f} s after 8 slow requests began")


def test_ondemand_starts_a_process_for_the_first_request_and_none_while_idle(python_echo, make_workdir) -> None:
    with served(python_echo, make_workdir("pool-ondemand"), "--processes", "0:2") as front:
        # The harness's readiness probe connected (which starts one): it is stopped once idle.
        assert wait_until(lambda: children(front) == []), "no process while nothing comes"
        started = time.monotonic()
        response = client.get(front, "/app/pid")
        first = time.monotonic() - started
        assert response.status == 200, response
        # Served by a process started for it: the supervisor's one child now.
        assert children(front) == [int(response.body)], (response, children(front))
        assert wait_until(lambda: children(front) == []), children(front)
        assert client.get(front, "/app/hello").status == 200, "and again on demand"
        print(f"first request answered {first * 1000:.0f} ms after it was sent (process start included)")


def test_the_pool_grows_no_faster_than_max_spawn_rate(python_echo, make_workdir) -> None:
    """1:4 at one process a second, under four slow requests of 4 s: the three processes the
    queue calls for come one by one, at least a second apart (less the 50 ms the polling of
    /proc may lose on each side)."""
    with served(python_echo, make_workdir("pool-rate"), "--processes", "1:4", "--max-spawn-rate", "1") as front:
        assert wait_until(lambda: len(children(front)) == 1)
        slow, statuses, started = slow_requests(front, 4, 4000)
        seen: dict[int, float] = {}  # pid → when it was first seen
        while len(seen) < 4 and time.monotonic() - started < 8:
            for pid in children(front):
                seen.setdefault(pid, time.monotonic() - started)
            time.sleep(0.02)
        for thread in slow:
            thread.join(60)
        assert statuses == [200] * 4
        times = sorted(seen.values())[1:]  # the first process was there before the requests
        assert len(times) == 3, seen
        gaps = [round(later - earlier, 2) for earlier, later in zip(times, times[1:], strict=False)]
        print(f"new processes seen at {', '.join(f'{t:.2f}' for t in times)} s (apart: {gaps})")
        assert all(gap > 0.9 for gap in gaps), f"more than one process a second: {times}"

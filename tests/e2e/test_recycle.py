"""Recycling through real nginx: processes replaced after `--max-requests` (with jitter) and past
`--max-rss`, each new process started before the old one ends, and no request failing meanwhile.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .harness import client, selection
from .harness.apps import App
from .harness.fronts import FRONTS, Front
from .harness.procfs import rss

APPS = ("python-echo", "asgi-echo", "rust-echo")


pytest_generate_tests, recycled_app = selection.module_apps("nginx", recycled_app=APPS)


@contextmanager
def served(app: App, workdir: Path, *flags: str) -> Iterator[Front]:
    status = ("--status-path", "/app/fcgi-status")
    with FRONTS["nginx"](dataclasses.replace(app, argv=(*app.argv, *status, *flags)), workdir) as front:
        yield front


def process_pids(front: Front) -> set[int]:
    page = json.loads(client.get(front, "/app/fcgi-status?json", timeout=30).body)
    return {process["pid"] for process in page["process_list"]}


def test_a_load_across_twenty_recycles_sees_no_error(recycled_app, make_workdir) -> None:
    """Two processes recycling every 10 to 15 requests; four clients, 300 requests."""
    flags = ("--processes", "2", "--workers", "2", "--max-requests", "10", "--max-requests-jitter", "5")
    with served(recycled_app, make_workdir(f"recycle-{recycled_app.name}"), *flags) as front:
        statuses: list[int] = []
        pids: set[bytes] = set()

        def load() -> None:
            for _ in range(75):
                response = client.get(front, "/app/pid", timeout=30)
                statuses.append(response.status)
                pids.add(response.body)

        clients = [threading.Thread(target=load) for _ in range(4)]
        for thread in clients:
            thread.start()
        for thread in clients:
            thread.join(120)
        assert len(statuses) == 300 and set(statuses) == {200}, sorted(set(statuses))
        # 300 requests at most 15 per process: at least 20 processes served them.
        assert len(pids) >= 20, len(pids)
        # The last ones retiring may still be ending.
        deadline = time.monotonic() + 10
        while len(process_pids(front)) != 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(process_pids(front)) == 2


def test_a_process_past_max_rss_is_replaced(make_workdir, build_app, request) -> None:
    app = selection.one_app(request, build_app, "python-echo")
    flags = ("--processes", "2", "--workers", "1", "--max-rss", "80")
    with served(app, make_workdir("recycle-rss"), *flags) as front:
        before = process_pids(front)
        failures: list[int] = []
        done = threading.Event()

        def load() -> None:
            while not done.is_set():
                response = client.get(front, "/app/hello", timeout=30)
                if response.status != 200:
                    failures.append(response.status)

        clients = [threading.Thread(target=load) for _ in range(4)]
        for thread in clients:
            thread.start()
        grown = int(client.get(front, "/app/grow?mib=100").body)
        assert grown in before and rss(grown) > 80 << 20
        deadline = time.monotonic() + 15
        while grown in process_pids(front) and time.monotonic() < deadline:
            time.sleep(0.1)
        done.set()
        for thread in clients:
            thread.join(60)
        after = process_pids(front)
        assert grown not in after and len(after) == 2, (before, after)
        assert failures == [], "no request failed under load while the process was recycled"


def test_a_lone_process_past_max_rss_reexecutes_with_its_memory_back(make_workdir, build_app, request) -> None:
    app = selection.one_app(request, build_app, "python-echo")
    with served(app, make_workdir("recycle-rss-lone"), "--workers", "1", "--max-rss", "80") as front:
        pid = int(client.get(front, "/app/grow?mib=100").body)
        deadline = time.monotonic() + 15
        while rss(pid) > 80 << 20 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert rss(pid) < 80 << 20, "re-executed: the memory is given back"
        assert int(client.get(front, "/app/pid").body) == pid, "the same process, on the same socket"

"""The status and ping pages through real nginx, on every face: answered by the server itself,
also while every worker is busy (the reason they exist), with exact counts, in every format,
across processes, and only to the addresses allowed.

Each echo app runs with `--status-path /app/fcgi-status --ping-path /app/fcgi-ping` (nginx's
`/app` location makes SCRIPT_NAME `/app`, PATH_INFO the rest) and `--workers N`; the tests hold N
slow requests (`/slow?ms=...`) so that no worker is free, then ask for the pages.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from .harness import client, selection
from .harness.apps import App
from .harness.fronts import FRONTS, Front

APPS = ("rust-echo", "python-echo", "asgi-echo", "c-echo", "compat-echo")
STATUS = "/app/fcgi-status"
PING = "/app/fcgi-ping"
SLOW = "/app/slow?ms=4000"


pytest_generate_tests, status_app = selection.module_apps("nginx", status_app=APPS)


WORKERS = 2

#: The C and libfcgi echoes accept on their main thread and serve each request on a thread of
#: its own: they are never all busy, so nothing waits in the server's queue.
THREAD_PER_REQUEST = ("c-echo", "compat-echo")


@contextmanager
def served(app: App, make_workdir, *flags: str, pages: tuple[str, ...] = ("--status-path", STATUS)) -> Iterator[Front]:
    workdir = make_workdir(f"status-{app.name}")
    pages = (*pages, "--ping-path", PING)
    with FRONTS["nginx"](dataclasses.replace(app, argv=(*app.argv, *pages, *flags)), workdir) as front:
        yield front


def status(front: Front, query: str = "json&full") -> dict:
    response = client.get(front, f"{STATUS}?{query}", timeout=10)
    assert response.status == 200, response
    return json.loads(response.body)


def wait_for(front: Front, check: Callable[[dict], bool], timeout: float = 10.0) -> dict:
    """The status page once `check` holds for it (or the last one, at the timeout)."""
    deadline = time.monotonic() + timeout
    while True:
        page = status(front)
        if check(page) or time.monotonic() > deadline:
            return page
        time.sleep(0.05)


class Held:
    """Requests running in threads: `count` GETs of `path`, their statuses once joined."""

    def __init__(self, front: Front, path: str, count: int):
        self.statuses: list[int] = []
        self.threads = [threading.Thread(target=self._get, args=(front, path)) for _ in range(count)]
        for thread in self.threads:
            thread.start()

    def _get(self, front: Front, path: str) -> None:
        self.statuses.append(client.get(front, path, timeout=60).status)

    def join(self) -> list[int]:
        for thread in self.threads:
            thread.join(60)
        return self.statuses


def test_ping_and_status_are_answered_by_the_server(status_app, make_workdir) -> None:
    with served(status_app, make_workdir, "--workers", str(WORKERS)) as front:
        ping = client.get(front, PING)
        assert (ping.status, ping.body, ping.headers["Cache-Control"]) == (200, b"pong\n", "no-store"), ping
        assert client.get(front, "/app/hello").status == 200
        text = client.get(front, STATUS)
        assert text.status == 200 and text.headers["Content-Type"].startswith("text/plain"), text
        lines = dict(line.split(":", 1) for line in text.body.decode().splitlines() if ":" in line)
        assert int(lines["idle workers"]) == WORKERS, text
        assert int(lines["active workers"]) == 0, text
        page = status(front)
        # Ping, hello and the text page ended before this page was taken.
        assert page["requests"] >= 3 and page["responses_2xx"] >= 3, page
        assert page["processes"] == 1 and page["process_list"][0]["pid"] == front.backends[0].process.pid, page


def test_status_answers_while_every_worker_is_busy_with_exact_counts(status_app, make_workdir) -> None:
    workers = WORKERS
    with served(status_app, make_workdir, "--workers", str(workers)) as front:
        slow = Held(front, SLOW, workers)
        wait_for(front, lambda page: page["active_workers"] == workers)
        started = time.monotonic()
        page = status(front)
        took = time.monotonic() - started
        # Answered with no worker free: the server itself, not a worker, wrote this page. It came
        # well before any worker could have been freed: the slow requests still run, and a page
        # that waited for a worker would have taken seconds.
        assert all(thread.is_alive() for thread in slow.threads), "answered only once a worker was free"
        assert took < 2, f"the page waited {took:.2f} s: for a worker?"
        print(f"{status_app.name}: status page answered in {took * 1000:.1f} ms with every worker busy")
        assert (page["active_workers"], page["idle_workers"]) == (workers, 0), page
        running = [w for w in page["workers"] if w["state"] == "running"]
        assert [w["request"] for w in running] == [f"GET {SLOW}"] * workers, page
        assert all(w["request_duration_us"] > 0 for w in running), page
        # One more request waits for a worker, in the server's queue: counted, then served.
        queued = Held(front, "/app/hello", 1)
        if status_app.name not in THREAD_PER_REQUEST:
            page = wait_for(front, lambda page: page["waiting_requests"] == 1)
            assert page["waiting_requests"] == 1, page
        assert slow.join() == [200] * workers
        assert queued.join() == [200]
        page = wait_for(front, lambda page: page["active_workers"] == 0)
        assert page["active_workers"] == 0 and page["max_active_workers"] >= workers, page
        assert page["waiting_requests"] == 0, page
        if status_app.name not in THREAD_PER_REQUEST:
            assert page["max_waiting_requests"] >= 1, page


def test_ping_alone_answers_while_every_worker_is_busy(status_app, make_workdir) -> None:
    """No status page, only ping: the server still knows when every worker is busy."""
    with served(status_app, make_workdir, "--workers", str(WORKERS), pages=()) as front:
        slow = Held(front, SLOW, WORKERS)
        time.sleep(0.5)
        ping = client.get(front, PING, timeout=10)
        assert (ping.status, ping.body) == (200, b"pong\n"), ping
        assert all(thread.is_alive() for thread in slow.threads), "answered while the slow requests ran"
        assert client.get(front, STATUS).status == 404, "no status page: the app's own 404"
        assert slow.join() == [200] * WORKERS


def test_openmetrics_is_valid_and_the_counts_move(status_app, make_workdir) -> None:
    from prometheus_client.openmetrics.parser import text_string_to_metric_families

    with served(status_app, make_workdir) as front:

        def metrics() -> dict[str, float]:
            response = client.get(front, f"{STATUS}?openmetrics")
            assert response.headers["Content-Type"].startswith("application/openmetrics-text"), response
            samples = {}
            for family in text_string_to_metric_families(response.body.decode()):
                for sample in family.samples:
                    labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
                    samples[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
            return samples

        before = metrics()
        for _ in range(3):
            assert client.get(front, "/app/hello").status == 200
        assert client.get(front, "/app/status/404").status == 404
        after = metrics()
        # The first metrics page itself ended in between, too.
        assert after["fcgi_requests_total"] - before["fcgi_requests_total"] == 5, after
        assert after["fcgi_responses_total{class=4xx}"] - before["fcgi_responses_total{class=4xx}"] == 1
        assert after["fcgi_connections_total"] >= 6 and after["fcgi_listen_queue"] == 0, after


def test_addresses_not_allowed_get_a_404_as_if_there_were_no_page(status_app, make_workdir) -> None:
    with served(status_app, make_workdir, "--status-allow", "10.0.0.0/8,2001:db8::/32") as front:
        for path in (STATUS, PING):
            response = client.get(front, path)
            assert response.status == 404 and b"pong" not in response.body, response
        assert client.get(front, "/app/hello").status == 200


@pytest.mark.parametrize("name", ["python-echo", "rust-echo"])
def test_every_process_is_on_one_page(name, make_workdir, build_app, request) -> None:
    """Two processes of one worker each, both busy: the page, whichever process answers it,
    counts both, with their own pids (not the supervisor's)."""
    app = selection.one_app(request, build_app, name)
    with served(app, make_workdir, "--processes", "2", "--workers", "1") as front:
        slow = Held(front, SLOW, 2)
        page = wait_for(front, lambda page: page["active_workers"] == 2)
        pids = {p["pid"] for p in page["process_list"]}
        assert page["processes"] == 2 and len(pids) == 2, page
        assert front.backends[0].process.pid not in pids, page
        assert (page["active_workers"], page["idle_workers"]) == (2, 0), page
        assert {w["pid"] for w in page["workers"] if w["state"] == "running"} == pids, page
        assert slow.join() == [200, 200]


def test_the_html_page_renders_in_a_browser(make_workdir, build_app, tmp_path: Path, request) -> None:
    """Headless Chromium loads the page (a worker busy, so its row shows) and takes its picture;
    `FCGI_STATUS_SCREENSHOT=PATH` keeps the picture (docs/status.png comes from here)."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("chromium is not installed (tests/install-deps.sh installs it)")
    app = selection.one_app(request, build_app, "python-echo")
    with served(app, make_workdir, "--workers", "2") as front:
        slow = Held(front, SLOW, 1)
        wait_for(front, lambda page: page["active_workers"] == 1)
        url = f"http://{front.host}:{front.port}{STATUS}?html&full"
        browser = (chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars")
        dom = subprocess.run((*browser, "--dump-dom", url), capture_output=True, text=True, timeout=60).stdout
        assert "<h1>FastCGI server status</h1>" in dom, dom
        assert f'<tr class="running"><td>{front.backends[0].process.pid}</td>' in dom, dom
        assert f"GET {SLOW}" in dom.replace("&amp;", "&"), dom
        shot = Path(os.environ.get("FCGI_STATUS_SCREENSHOT", tmp_path / "status.png"))
        picture = (*browser, "--window-size=1280,900", f"--screenshot={shot}", url)
        subprocess.run(picture, capture_output=True, timeout=60)
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert slow.join() == [200]


def test_the_limit_the_listen_queue_and_the_bytes_are_counted(make_workdir, build_app, request) -> None:
    """The counters no other test moves. One connection allowed: a second one while the first
    is held is refused, and counted. A body of N bytes in, M out: the byte counts grow by them."""
    app = selection.one_app(request, build_app, "python-echo")
    with served(app, make_workdir, "--workers", "1", "--max-connections", "1") as front:
        before = status(front)
        assert before["connection_limit_hits"] == 0, before
        body = os.urandom(100_000)
        echoed = client.request(front, "POST", "/app/echo", body)
        assert echoed.status == 200 and echoed.body == body, echoed
        big = client.get(front, "/app/big?n=300000")
        assert big.status == 200 and len(big.body) == 300_000, big
        after = status(front)
        assert after["bytes_in"] - before["bytes_in"] >= len(body), after
        assert after["bytes_out"] - before["bytes_out"] >= len(body) + 300_000, after
        slow = Held(front, "/app/slow?ms=1500", 1)
        time.sleep(0.5)
        # The one connection allowed is the slow request's: nginx's next one is refused.
        refused = client.get(front, "/app/hello")
        assert refused.status >= 500, refused
        assert slow.join() == [200]
        page = status(front)
        assert page["connection_limit_hits"] >= 1, page
        print(f"limit hits {page['connection_limit_hits']}, +{after['bytes_in'] - before['bytes_in']} bytes in")


def test_connections_waiting_in_the_listeners_queue_are_counted(make_workdir, build_app, request) -> None:
    """A pool of 1:2 processes of one worker: while the only worker is busy and the second
    process is yet to start, nothing accepts, and the connections wait in the listener's queue,
    where the status page's measure sees them. (Probes at the start may have queued a couple
    already, before the first process came: five at once is more than those.)"""
    app = selection.one_app(request, build_app, "python-echo")
    flags = ("--workers", "1", "--processes", "1:2", "--max-spawn-rate", "1", "--process-idle-timeout", "1")
    with served(app, make_workdir, *flags) as front:
        before = status(front)["max_listen_queue"]
        slow = Held(front, "/app/slow?ms=1500", 1)
        time.sleep(0.3)
        waiting = Held(front, "/app/hello", 5)
        assert slow.join() == [200] and waiting.join() == [200] * 5
        page = status(front)
        # Four at least: the second process, once started, takes one of the five.
        assert page["max_listen_queue"] >= 4, page
        print(f"max listen queue {before} at the start, {page['max_listen_queue']} after")

"""Lifecycle under load through real servers: stop signals in the middle of 50 requests behind
nginx, processes recycled by mod_fcgid at `max_requests`, and a process killed under mod_fcgid.

Every test runs against every app of the registry (rust-echo, python-echo, c-echo); `--app` and
`--front` (`nginx`, `apache-fcgid`) narrow them down.
"""

from __future__ import annotations

import collections
import http.client
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest

from .conftest import selected_apps
from .harness import client, contract, logs, selection
from .harness.apps import App
from .harness.fronts import FRONTS, Front, apache_fcgid
from .harness.stream import RequestStream
from .harness.stress import apache_fcgid_recycling

CONCURRENT = 50
SLOW_MS = 300
STOP_WITHIN = 15.0
"""Seconds the app may take to exit after a stop signal: the 25 slow requests take 2 s spread over
4 workers, 7.5 s if one worker serves everything queued at the stop."""
LATE_THREADS = 4
LATE_PATH = "/slow?ms=50"
"""What keeps coming after the signal: requests that take a moment, as real ones do."""
MAX_REQUESTS = 50
RECYCLE_SEQUENTIAL = 1000
RECYCLE_CONCURRENT = 1000
RECYCLE_THREADS = 4
# mod_fcgid's line for a process it reaped, and its words for one it had to SIGKILL.
EXITED = b"mod_fcgid: process "
KILL_MESSAGES = (b"graceful kill fail", b"still did not exit")
SIGTERMED = b"get stop signal 15"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Every app, behind nginx (`nginx_app`) or mod_fcgid (`fcgid_app`) unless `--front` says otherwise."""
    for fixture, front in (("nginx_app", "nginx"), ("fcgid_app", "apache-fcgid")):
        if fixture in metafunc.fixturenames:
            config = metafunc.config
            apps = [app for app in selected_apps(config) if selection.wanted(config, front, app.name)]
            metafunc.parametrize(fixture, apps, ids=[app.name for app in apps], indirect=True, scope="module")


@pytest.fixture(scope="module")
def nginx_app(request: pytest.FixtureRequest, build_app: Callable[[App], App]) -> App:
    return build_app(request.param)


@pytest.fixture(scope="module")
def fcgid_app(request: pytest.FixtureRequest, build_app: Callable[[App], App]) -> App:
    return build_app(request.param)


@dataclass
class Sent:
    """One request of the load: when its bytes were handed to nginx, and how it ended."""

    path: str
    sent_at: float = 0.0
    done_at: float = 0.0
    status: int | None = None
    body: bytes = b""
    error: str = ""


def send(front: Front, sent: Sent, start: threading.Barrier | None = None) -> None:
    conn = http.client.HTTPConnection(front.host, front.port, timeout=30)
    try:
        if start is not None:
            start.wait()
        conn.request("GET", front.url(sent.path))
        sent.sent_at = time.monotonic()
        response = conn.getresponse()
        sent.status, sent.body = response.status, response.read()
    except (OSError, http.client.HTTPException) as e:
        sent.error = f"{type(e).__name__}: {e}"
    finally:
        sent.done_at = time.monotonic()
        conn.close()


def expected_body(path: str) -> bytes:
    return f"slept {SLOW_MS}\n".encode() if path.startswith("/slow") else contract.HELLO


@pytest.fixture
def nginx_front(nginx_app: App, make_workdir):
    with FRONTS["nginx"](nginx_app, make_workdir(f"stop-{nginx_app.name}")) as front:
        yield front


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGUSR1], ids=["SIGTERM", "SIGUSR1"])
def test_stop_signal_under_load_finishes_every_accepted_request(nginx_front: Front, signum: int) -> None:
    """50 concurrent requests (/slow?ms=300 and /hello) through nginx, then the signal while
    more requests keep coming: each request sent before the signal completes with 200, the app
    exits 0 in good time all the same, and requests sent after it get 200 or nginx's 502."""
    backend = nginx_front.backends[0]
    assert client.get(nginx_front, nginx_front.url("/hello")).status == 200
    load = [Sent(f"/slow?ms={SLOW_MS}" if i % 2 == 0 else "/hello") for i in range(CONCURRENT)]
    start = threading.Barrier(CONCURRENT, timeout=10)
    threads = [threading.Thread(target=send, args=(nginx_front, s, start)) for s in load]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 10
    while not all(s.sent_at or s.error for s in load) and time.monotonic() < deadline:
        time.sleep(0.005)
    time.sleep(0.1)  # nginx has passed every request on to the app
    signalled_at = time.monotonic()
    backend.process.signal(signum)
    with RequestStream(nginx_front, nginx_front.url(LATE_PATH), threads=LATE_THREADS) as late:
        try:
            status: int | None = backend.process.wait(timeout=STOP_WITHIN)
        except subprocess.TimeoutExpired:
            status = None
        exited_after = time.monotonic() - signalled_at
    for thread in threads:
        thread.join()
    name = signal.Signals(signum).name
    late_statuses = collections.Counter(o.status or o.error for o in late.outcomes)

    before = [s for s in load if s.sent_at and s.sent_at < signalled_at]
    assert len(before) == CONCURRENT, [s for s in load if s not in before]
    failed = [s for s in before if s.status != 200 or s.body != expected_body(s.path)]
    assert failed == [], f"{len(failed)} of {len(before)} requests sent before the signal failed"
    in_flight = [s for s in before if s.done_at > signalled_at]
    assert len(in_flight) >= 10, f"only {len(in_flight)} requests were in flight at the signal: a vacuous test"
    assert status is not None, (
        f"the app still ran {STOP_WITHIN:.0f} s after {name} while requests kept coming; after the signal: "
        f"{late_statuses}"
    )
    assert status == 0, f"the app exited with {status} after {name}"
    assert [o for o in late.outcomes if o.status not in (200, 502)] == [], late_statuses
    print(
        f"{nginx_front.app.name} {name}: {len(before)} sent before, all 200, {len(in_flight)} in flight at the "
        f"signal; exit 0 after {exited_after:.2f} s; requests after it: {late_statuses}"
    )


@pytest.fixture
def recycling_front(fcgid_app: App, make_workdir):
    with apache_fcgid_recycling(fcgid_app, make_workdir(f"recycle-{fcgid_app.name}"), MAX_REQUESTS) as front:
        yield front


def test_fcgid_recycles_at_max_requests_without_an_error(recycling_front: Front) -> None:
    """FcgidMaxRequestsPerProcess and the app's --max-requests agree (50): over 2,000 requests,
    sequential then 4 at a time, every one is a 200 and no process serves more than 50."""
    front = recycling_front

    def one(_: int = 0) -> tuple[int, bytes]:
        response = client.get(front, front.url("/pid"), timeout=30)
        return response.status, response.body

    outcomes = [one() for _ in range(RECYCLE_SEQUENTIAL)]
    with ThreadPoolExecutor(RECYCLE_THREADS) as pool:
        outcomes += list(pool.map(one, range(RECYCLE_CONCURRENT)))
    statuses = collections.Counter(status for status, _ in outcomes)
    assert statuses == {200: RECYCLE_SEQUENTIAL + RECYCLE_CONCURRENT}, statuses
    per_pid = collections.Counter(int(body) for _, body in outcomes)
    assert max(per_pid.values()) <= MAX_REQUESTS, per_pid.most_common(3)
    assert len(per_pid) >= len(outcomes) // MAX_REQUESTS, f"only {len(per_pid)} processes served"
    # The processes that served their 50 exit by themselves with status 0. mod_fcgid also sends
    # each one SIGTERM at its next scan; one still busy exiting then may die of it (the Python
    # face restores SIGTERM's default when serve_wsgi returns, before the interpreter is done):
    # no request is lost either way. A SIGKILL is a failure.
    recycled = sum(1 for count in per_pid.values() if count == MAX_REQUESTS)
    error_log = front.server.error_log
    assert logs.wait_for([error_log], EXITED, timeout=10, times=recycled), f"fewer than {recycled} exits logged"
    exits = logs.lines_with(error_log, EXITED)
    assert [line for line in exits if b"return code: 0" not in line and SIGTERMED not in line] == []
    for message in KILL_MESSAGES:
        assert logs.lines_with(error_log, message) == []
    sigtermed = sum(1 for line in exits if SIGTERMED in line)
    print(
        f"{front.app.name}: {len(outcomes)} requests, {statuses}, {len(per_pid)} processes, "
        f"{recycled} recycled, {len(exits) - sigtermed} exits 0, {sigtermed} ended by mod_fcgid's SIGTERM"
    )


@pytest.fixture
def fcgid_front(fcgid_app: App, make_workdir):
    with apache_fcgid(fcgid_app, make_workdir(f"sigkill-{fcgid_app.name}")) as front:
        yield front


def test_sigkilled_app_is_respawned_by_fcgid(fcgid_front: Front) -> None:
    """SIGKILL to the process mod_fcgid spawned: Apache starts another and requests succeed."""
    front = fcgid_front
    response = client.get(front, front.url("/pid"))
    assert response.status == 200, response
    victim = int(response.body)
    os.kill(victim, signal.SIGKILL)
    statuses: list[int] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        response = client.get(front, front.url("/pid"), timeout=30)
        statuses.append(response.status)
        if response.status == 200 and int(response.body) != victim:
            break
        time.sleep(0.1)
    else:
        pytest.fail(f"no new process served within 30 s: {statuses}")
    later = [client.get(front, front.url("/hello")).status for _ in range(20)]
    assert later == [200] * 20
    print(f"{front.app.name}: after SIGKILL of {victim}, the requests until a new process served: {statuses}")

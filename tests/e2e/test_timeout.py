"""The request timeout through real nginx, on every face: a request past `--timeout` is ended
with a 504 (and an access-log line that says so) while its worker serves on; one stuck where
nothing reaches it (a sleep in C) has its process replaced after `--timeout-grace`, its stack
logged first, and the server keeps answering; with `--processes`, a new process is started in
the stuck one's place while the stuck one ends.
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

#: The faces whose slow route stops at its abort check (Rust, C) or is Python code the server can
#: interrupt (the Python echo's /spin): they end at the timeout, in the same process.
ENDING = {
    "rust-echo": "/app/slow?ms=30000",
    "c-echo": "/app/slow?ms=30000",
    "python-echo": "/app/spin?s=30",
    # The ASGI echo's /spin awaits between its rounds: the timeout cancels its task.
    "asgi-echo": "/app/spin?s=30",
}
#: The faces whose view unwinds at the timeout (its `finally` leaves a mark), and what it
#: unwinds by: the package's own exception in a WSGI view, the task's cancellation in ASGI.
UNWINDING = {"python-echo": "fcgi_wsgi.RequestTimeout", "asgi-echo": "CancelledError"}
#: The faces stuck in a sleep nothing interrupts: their process is replaced.
STUCK = {"python-echo": "/app/slow?ms=30000", "compat-echo": "/app/slow?ms=30000"}
TIMEOUT = ("--timeout", "1", "--timeout-grace", "1", "--graceful-timeout", "1")


pytest_generate_tests, ending_app, stuck_app = selection.module_apps("nginx", ending_app=ENDING, stuck_app=STUCK)


@contextmanager
def served(app: App, workdir: Path, *flags: str) -> Iterator[Front]:
    status = ("--status-path", "/app/fcgi-status")
    with FRONTS["nginx"](dataclasses.replace(app, argv=(*app.argv, *TIMEOUT, *status, *flags)), workdir) as front:
        yield front


def log_of(front: Front) -> str:
    return "".join(path.read_text(errors="replace") for path in front.backends[0].logs().values())


def wait_for_log(front: Front, text: str, timeout: float = 20.0) -> str:
    deadline = time.monotonic() + timeout
    while text not in (log := log_of(front)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return log


def test_a_request_past_the_timeout_gets_a_504_and_its_worker_serves_on(ending_app, make_workdir) -> None:
    workdir = make_workdir(f"timeout-{ending_app.name}")
    access_log = workdir / "access.log"
    mark = workdir / "unwound"
    flags = ("--workers", "2", "--access-logfile", str(access_log), "--access-logformat", "%(s)s %(r)s")
    with served(ending_app, workdir, *flags) as front:
        pid = client.get(front, "/app/pid").body
        path = ENDING[ending_app.name] + (f"&mark={mark}" if ending_app.name in UNWINDING else "")
        started = time.monotonic()
        response = client.get(front, path, timeout=60)
        took = time.monotonic() - started
        assert response.status == 504 and response.body == b"Gateway Timeout\n", response
        assert took < 15, f"ended at the timeout, not at the end of the 30 s route: {took:.1f} s"
        if ending_app.name in UNWINDING:
            raised = UNWINDING[ending_app.name]
            assert mark.read_text() == f"unwound by {raised}\n", "the timeout unwound the view: its finally ran"
        # The same process serves on: nothing was replaced.
        assert client.get(front, "/app/pid").body == pid
        assert client.get(front, "/app/hello").status == 200
        page = client.get(front, "/app/fcgi-status?json")
        assert '"timed_out_requests":1' in page.body.decode(), page
        log = wait_for_log(front, "request timeout")
        assert f"request timeout: GET {path}" in log, log
        assert "replacing this process" not in log, log
    lines = access_log.read_text().splitlines()
    assert f"504 GET {path} HTTP/1.1" in lines, lines


def test_a_request_stuck_past_the_grace_has_its_process_replaced(stuck_app, make_workdir) -> None:
    """A sleep nothing interrupts: after timeout + grace the stack is logged, the process
    finishes its other requests and re-executes on its socket (graceful timeout 1 s), and the
    server answers on, with fresh counters."""
    with served(stuck_app, make_workdir(f"stuck-{stuck_app.name}"), "--workers", "2") as front:
        assert client.get(front, "/app/hello").status == 200
        ended: list[object] = []

        def ask() -> None:
            try:
                ended.append(client.get(front, STUCK[stuck_app.name], 60).status)
            except OSError as e:  # the connection closed with no response at all
                ended.append(type(e).__name__)
            ended.append(time.monotonic() - started)

        stuck = threading.Thread(target=ask)
        started = time.monotonic()
        stuck.start()
        log = wait_for_log(front, "replacing this process")
        assert "did not end 1s after its timeout" in log, log
        if stuck_app.name == "python-echo":
            assert "in app" in log and "time.sleep(ms / 1000)" in log, "the stuck thread's stack is logged"
        wait_for_log(front, "re-executing")
        stuck.join(30)
        assert not stuck.is_alive(), "the stuck request never ended"
        outcome, took = ended
        # Its own response: nginx's 504, or its 502 for a response cut off by the re-execution,
        # or a closed connection; never the sleep's 200 after 30 s.
        assert outcome in (502, 504) or isinstance(outcome, str), ended
        # Timeout 1 s + grace 1 s + graceful timeout 1 s, and room for a slow machine.
        assert took < 13, f"the stuck request ended {took:.1f} s after it was sent"
        print(f"{stuck_app.name}: the stuck request ended after {took:.2f} s with {outcome}")
        # Served by the re-executed program: its counters started again.
        deadline = time.monotonic() + 20
        while True:
            response = client.get(front, "/app/fcgi-status?json", timeout=10)
            if (response.status == 200 and '"timed_out_requests":0' in response.body.decode()) or (
                time.monotonic() > deadline
            ):
                break
            time.sleep(0.2)
        assert response.status == 200 and '"timed_out_requests":0' in response.body.decode(), response
        assert client.get(front, "/app/hello").status == 200


def test_with_processes_a_new_process_takes_the_stuck_ones_place(make_workdir, build_app, request) -> None:
    """Two processes; one gets stuck. A third is started while the stuck one ends, and a stream of
    requests meanwhile sees no error."""
    app = selection.one_app(request, build_app, "python-echo")
    with served(app, make_workdir("stuck-processes"), "--processes", "2", "--workers", "1") as front:

        def pids() -> set[int]:
            page = json.loads(client.get(front, "/app/fcgi-status?json", timeout=30).body)
            return {process["pid"] for process in page["process_list"]}

        before = pids()
        assert len(before) == 2, before
        stuck = threading.Thread(target=client.get, args=(front, "/app/slow?ms=30000", 60))
        stuck.start()
        failures: list[int] = []
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not (pids() - before):
            response = client.get(front, "/app/hello", timeout=30)
            if response.status != 200:
                failures.append(response.status)
        new = pids() - before
        assert new, f"no new process: {before}\n{log_of(front)}"
        assert failures == [], failures
        assert "replacing this process" in log_of(front)
        stuck.join(30)
        # The stuck one ended (graceful timeout 1 s); two serve on.
        deadline = time.monotonic() + 15
        while len(pids()) != 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert len(pids()) == 2 and new <= pids(), pids()


def test_under_mod_fcgid_a_spinning_view_and_a_sleeping_one_both_end(make_workdir, build_app, request) -> None:
    """mod_fcgid spawns the Python echo on fd 0: a view spinning in Python gets its 504 at the
    timeout; one asleep in C is cut at timeout + grace (its process re-executes on fd 0, so the
    client sees the response end); the next request is served either way."""
    app = selection.one_app(request, build_app, "python-echo")
    with FRONTS["apache-fcgid"](
        dataclasses.replace(app, argv=(*app.argv, *TIMEOUT)), make_workdir("fcgid-timeout")
    ) as front:
        started = time.monotonic()
        spun = client.get(front, front.url("/spin?s=30"), timeout=60)
        assert spun.status == 504 and spun.body == b"Gateway Timeout\n", spun
        assert client.get(front, front.url("/hello")).status == 200
        slept = client.get(front, front.url("/slow?ms=30000"), timeout=60)
        took = time.monotonic() - started
        # Not a 200 after 30 s: mod_fcgid answers the cut response with an error of its own.
        assert slept.status >= 500, slept
        assert took < 20, f"both ended within timeout + grace (+ the graceful timeout): {took:.1f} s"
        assert client.get(front, front.url("/hello")).status == 200

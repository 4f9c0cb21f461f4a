"""Reload: the server finishes the requests in flight and re-executes itself on the same listening
socket, so the next request runs the new code and no request fails.

- `python -m fcgi_wsgi --reload` behind nginx: saving a source file is enough (0.25 s poll);
- `django.cgi` calling `serve_wsgi(WSGIHandler(), reload=True)` under mod_fcgid: each process
  re-executes on its fd 0, with the same pid, and mod_fcgid notices nothing;
- SIGHUP to an app started without `--reload`: the same, when asked.

A steady stream of requests runs through each reload; every one must be a 200. Each test prints
how long the new code took to answer (`pytest -s` shows it): from the save (or the SIGHUP) to
the first response that the new code made.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from .harness import apache, apps, client, djangosite, logs, nginx, pythonpath, selection
from .harness.apps import App
from .harness.backend import Backend
from .harness.fronts import Front
from .harness.net import free_port
from .harness.stream import Outcome, RequestStream

THREADS = 4
TIMEOUT = 30.0
RELOADING = b"reloading: re-executing"
# The edits change the file's size as well as its text: Python trusts a cached .pyc whose
# recorded source mtime (whole seconds) and size both match, and a test edits within a second.
HELLO = (b"Hello, world!", b"Hello again, world!")
DJANGO_HOME = (b"over FastCGI</h1>", b"over FastCGI, reloaded</h1>")
# The test's copy of the Django site names the process in its home page.
HOME_WITH_PID = (
    b'HttpResponse("<h1>Hello from Django over FastCGI</h1>")',
    b'HttpResponse(f"<h1>Hello from Django over FastCGI</h1> pid={os.getpid()}")',
)
PID = re.compile(rb" pid=(\d+)")
POLL = 0.25
"""fcgi_wsgi's --reload polls the source files this often."""
FCGID_PROCESSES = 2
"""At least this many processes under mod_fcgid reload, each on its own."""
# mod_fcgid's line for each app process that went away.
EXITED = b") exit("
SETUPS = {
    "nginx-python-echo": ("nginx", "python-echo"),
    "apache-fcgid-django": ("apache-fcgid", djangosite.NAME),
}


class Started:
    """The fronts a test started, for the failure report (conftest appends their diagnostics)."""

    def __init__(self) -> None:
        self.fronts: list[Front] = []

    def diagnostics(self) -> list[tuple[str, str]]:
        return [section for front in self.fronts for section in front.diagnostics()]


@pytest.fixture
def started() -> Started:
    return Started()


def require(request: pytest.FixtureRequest, setup: str) -> None:
    if setup not in selection.params(request.config, SETUPS):
        pytest.skip(f"{setup} is not selected (--front/--app)")


def edit(path: Path, old: bytes, new: bytes) -> float:
    """Replace `old` with `new` in `path` as an editor saves it; the time it was saved."""
    text = path.read_bytes()
    assert text.count(old) == 1, f"{old!r} is not once in {path}"
    path.write_bytes(text.replace(old, new))
    return time.monotonic()


def first_new(front: Front, path: str, new: bytes, since: float) -> float:
    """Requests `path` until the answer has `new`: the seconds from `since` to that answer. Every
    answer must be a 200, and once the new code answered, the old one never again."""
    while True:
        response = client.get(front, path, timeout=TIMEOUT)
        assert response.status == 200, response
        if new in response.body:
            seconds = time.monotonic() - since
            break
        assert time.monotonic() - since < TIMEOUT, f"still the old code {TIMEOUT:.0f}s later: {response!r}"
    for _ in range(5):
        response = client.get(front, path, timeout=TIMEOUT)
        assert response.status == 200 and new in response.body, response
    return seconds


def first_new_in(stream: RequestStream, new: bytes, since: float) -> float:
    """Watches the stream's answers until one has `new`: the seconds from `since` to it (±5 ms).
    The test's own requests would be one client more, for which mod_fcgid might spawn a process."""
    seen = len(stream.outcomes)
    while not any(new in outcome.body for outcome in stream.outcomes[seen:]):
        assert time.monotonic() - since < TIMEOUT, f"still the old code {TIMEOUT:.0f}s later"
        time.sleep(0.005)
    return time.monotonic() - since


def report(what: str, seconds: float) -> None:
    print(f"\nreload timing: {what}: {seconds * 1000:.0f} ms to the first response by the new code")


def python_echo_copy(workroot: Path, workdir: Path) -> tuple[Path, Path]:
    """A copy of tests/apps/wsgi_echo.py to edit, and the folder holding fcgi_wsgi."""
    try:
        folder = pythonpath.fcgi_wsgi(apps.REPO, workroot)
    except RuntimeError as e:
        pytest.fail(f"building fcgi_wsgi failed: {e}", pytrace=False)
    source = workdir / "app" / "wsgi_echo.py"
    source.parent.mkdir(mode=0o755)
    shutil.copy(apps.REPO / "tests/apps/wsgi_echo.py", source)
    return source, folder


@contextmanager
def nginx_echo(workdir: Path, argv: tuple[str, ...], started: Started) -> Iterator[Front]:
    """nginx in front of `argv --bind unix:SOCK`, at /app."""
    app = App("python-app-copy", argv=argv)
    socket = workdir / "app.sock"
    with (
        Backend(app, socket, workdir) as backend,
        nginx.Nginx(workdir, free_port(), "", nginx.location("/app", nginx.target(socket))) as server,
    ):
        front = Front("nginx", app, "/app", server, [backend])
        started.fronts.append(front)
        yield front


def pid_of(front: Front) -> int:
    response = client.get(front, front.url("/pid"), timeout=TIMEOUT)
    assert response.status == 200, response
    return int(response.body)


def check_stream(stream: RequestStream, old: bytes, new: bytes) -> None:
    """Every request of the stream got a 200 from the old code or the new, and some from the new."""
    assert stream.failures() == [], stream.failures()[:5]
    kinds = [new in o.body for o in stream.outcomes if old in o.body or new in o.body]
    assert len(kinds) == len(stream.outcomes), [o for o in stream.outcomes if old not in o.body and new not in o.body]
    assert any(kinds), "the stream never saw the new code"


def check_exits_cleanly(front: Front) -> None:
    """After its reloads the app still stops on SIGTERM with status 0, and removes its socket."""
    (backend,) = front.backends
    backend.process.signal(signal.SIGTERM)
    assert backend.process.wait(timeout=15) == 0
    assert not Path(backend.address).exists(), f"{backend.address} left behind"


def test_reload_on_save_behind_nginx(request, workroot, make_workdir, started: Started) -> None:
    """`python -m fcgi_wsgi --reload`: the edit is served by the same process, re-executed (one
    process: --processes 1, as the tests of this file compare its pid)."""
    require(request, "nginx-python-echo")
    workdir = make_workdir("reload-nginx")
    source, folder = python_echo_copy(workroot, workdir)
    argv = pythonpath.command(
        [folder], "-m", "fcgi_wsgi", "--reload", "--chdir", str(source.parent), "wsgi_echo:app", "--processes", "1"
    )
    with nginx_echo(workdir, argv, started) as front:
        pid = pid_of(front)
        with RequestStream(front, front.url("/hello"), threads=THREADS) as stream:
            stream.wait_for(20)
            saved = edit(source, *HELLO)
            seconds = first_new(front, front.url("/hello"), HELLO[1], saved)
            stream.wait_for(len(stream.outcomes) + 20)
        report("--reload behind nginx, save", seconds)
        check_stream(stream, *HELLO)
        assert pid_of(front) == pid, "not the same process"
        assert logs.count(front.backends[0].process.log, RELOADING) == 1
        check_exits_cleanly(front)


def test_sighup_behind_nginx(request, workroot, make_workdir, started: Started) -> None:
    """Without `--reload`, an edit changes nothing until SIGHUP; then the new code answers."""
    require(request, "nginx-python-echo")
    workdir = make_workdir("sighup-nginx")
    source, folder = python_echo_copy(workroot, workdir)
    argv = pythonpath.command(
        [folder], "-m", "fcgi_wsgi", "--chdir", str(source.parent), "wsgi_echo:app", "--processes", "1"
    )
    with nginx_echo(workdir, argv, started) as front:
        pid = pid_of(front)
        with RequestStream(front, front.url("/hello"), threads=THREADS) as stream:
            stream.wait_for(20)
            saved = edit(source, *HELLO)
            # No watcher: the old code answers on (five of its polls).
            while time.monotonic() - saved < 1.25:
                response = client.get(front, front.url("/hello"), timeout=TIMEOUT)
                assert (response.status, response.body) == (200, HELLO[0]), response
            signalled = time.monotonic()
            front.backends[0].process.signal(signal.SIGHUP)
            seconds = first_new(front, front.url("/hello"), HELLO[1], signalled)
            stream.wait_for(len(stream.outcomes) + 20)
        report("SIGHUP behind nginx", seconds)
        check_stream(stream, *HELLO)
        assert pid_of(front) == pid, "not the same process"
        check_exits_cleanly(front)


# Two apps whose module `view` changes soon after it was imported: by the first request, as
# Django imports the views, or while the app starts (Django's set-up takes a second or so).
LAZY_APP = """\
def app(environ, start_response):
    import view

    body = view.TEXT.encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
"""
SLOW_APP = """\
# version 1
import time

import view

time.sleep(1.0)


def app(environ, start_response):
    body = view.TEXT.encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
"""
VIEW = (b'TEXT = "old"\n', b'TEXT = "new, edited"\n')
"""view.py before and after the edit; the app answers its TEXT."""


@contextmanager
def view_app(workroot: Path, workdir: Path, app_text: str, started: Started) -> Iterator[tuple[Front, Path]]:
    """`--reload` behind nginx for an app of `app_text` (module `app`) and its module `view`."""
    source, folder = python_echo_copy(workroot, workdir)
    (source.parent / "app.py").write_text(app_text)
    view = source.parent / "view.py"
    view.write_bytes(VIEW[0])
    argv = pythonpath.command(
        [folder], "-m", "fcgi_wsgi", "--reload", "--chdir", str(source.parent), "app:app", "--processes", "1"
    )
    with nginx_echo(workdir, argv, started) as front:
        first = client.get(front, front.url("/"), timeout=TIMEOUT)
        assert (first.status, first.body) == (200, b"old"), first
        yield front, view


def check_new_view(front: Front, within: float) -> None:
    deadline = time.monotonic() + within
    while (response := client.get(front, front.url("/"), timeout=TIMEOUT)).body == b"old":
        assert time.monotonic() < deadline, "the old code serves on: the edit went unnoticed"
        time.sleep(0.05)
    assert (response.status, response.body) == (200, b"new, edited"), response


def test_edit_right_after_first_import(request, workroot, make_workdir, started: Started) -> None:
    """A module that a request imported, saved right after (within one poll), is reloaded too."""
    require(request, "nginx-python-echo")
    with view_app(workroot, make_workdir("reload-lazy"), LAZY_APP, started) as (front, view):
        edit(view, *VIEW)  # a few ms after the import
        check_new_view(front, within=8 * POLL)


def test_edit_while_the_app_restarts(request, workroot, make_workdir, started: Started) -> None:
    """Two saves half a second apart: the second lands while the first one's reload is starting
    the app, after the new program imported that file, before the watcher began."""
    require(request, "nginx-python-echo")
    with view_app(workroot, make_workdir("reload-twice"), SLOW_APP, started) as (front, view):
        edit(view.parent / "app.py", b"# version 1\n", b"# version 2, saved first\n")
        assert logs.wait_for([front.backends[0].process.log], RELOADING, timeout=TIMEOUT)
        time.sleep(0.4)  # the new program has imported `view` and sets up for a second
        edit(view, *VIEW)
        check_new_view(front, within=1.0 + 8 * POLL)


def fcgid_processes(program: Path) -> set[int]:
    """The pids of the processes running `program` (mod_fcgid's children)."""
    pids = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if str(program).encode() in argv:
            pids.add(int(entry.name))
    return pids


def pids_answering(outcomes: list[Outcome], text: bytes = b"") -> set[int]:
    """The pids that the Django copy's home page names, in the answers that contain `text`."""
    return {int(m[1]) for o in outcomes if text in o.body and (m := PID.search(o.body))}


def settled_processes(program: Path, stream: RequestStream) -> set[int]:
    """The processes mod_fcgid runs for `program` once there are a few and the set stays the same
    for two polls after each answered (so imported the views, which each watcher then knows:
    see test_edit_right_after_first_import). mod_fcgid spawns as it sees fit, not one per thread."""
    deadline = time.monotonic() + TIMEOUT
    while True:
        pids = fcgid_processes(program)
        if len(pids) >= FCGID_PROCESSES and pids <= pids_answering(stream.outcomes):
            time.sleep(2 * POLL)
            if fcgid_processes(program) == pids:
                return pids
        assert time.monotonic() < deadline, f"processes {pids}, answered {pids_answering(stream.outcomes)}"
        time.sleep(0.05)


def test_reload_on_save_under_mod_fcgid(request, django_site: djangosite.Site, make_workdir, started: Started) -> None:
    """django.cgi with `serve_wsgi(WSGIHandler(), reload=True)`: each process mod_fcgid spawned
    re-executes on its fd 0 when a view changes, keeps its pid, and mod_fcgid notices nothing."""
    require(request, "apache-fcgid-django")
    workdir = make_workdir("reload-fcgid")
    site = workdir / "site"
    shutil.copytree(djangosite.SOURCE, site, ignore=shutil.ignore_patterns("__pycache__"))
    program = site / "django.cgi"
    edit(program, b"serve_wsgi(WSGIHandler())", b"serve_wsgi(WSGIHandler(), reload=True)")
    edit(site / "demo_site/views.py", *HOME_WITH_PID)
    config = apache.fcgid_site(workdir, site, ".cgi", django_site.env)
    with apache.Apache(workdir, free_port(), ("fcgid",), config) as server:
        front = Front("apache-fcgid", django_site.app(), "/django.cgi", server)
        started.fronts.append(front)
        with RequestStream(front, front.url("/"), threads=THREADS) as stream:
            pids = settled_processes(program, stream)
            sockets = {pid: os.readlink(f"/proc/{pid}/fd/0") for pid in pids}
            mark = len(stream.outcomes)
            saved = edit(site / "demo_site/views.py", *DJANGO_HOME)
            seconds = first_new_in(stream, DJANGO_HOME[1], saved)
            # Each process reloads on its own watcher, and answers with the new code.
            while not pids <= (renewed := pids_answering(stream.outcomes[mark:], DJANGO_HOME[1])):
                assert time.monotonic() - saved < TIMEOUT, f"old code still in {pids - renewed}"
                time.sleep(0.05)
            everyone = time.monotonic() - saved
            settled = len(stream.outcomes)
            stream.wait_for(settled + 8 * THREADS)
        report("reload=True under mod_fcgid (Django), save", seconds)
        report(f"reload=True under mod_fcgid (Django), save, each of {len(pids)} processes", everyone)
        check_stream(stream, *DJANGO_HOME)
        stale = [o for o in stream.outcomes[settled:] if DJANGO_HOME[1] not in o.body]
        assert stale == [], f"{len(stale)} answers by the old code after every process reloaded"
        assert logs.count(server.error_log, RELOADING) == len(pids)
        # mod_fcgid noticed nothing: no process went away, and the same pids serve on, on the
        # same listening socket.
        assert logs.lines_with(server.error_log, EXITED) == []
        assert pids <= fcgid_processes(program)
        assert {pid: os.readlink(f"/proc/{pid}/fd/0") for pid in pids} == sockets, "fd 0 changed"

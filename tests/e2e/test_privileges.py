"""`--user`, `--socket-owner` and `--socket-mode` behind a real nginx whose workers run as
www-data, not root (the other e2e tests run nginx's workers as root).

`python -m fcgi_wsgi` starts as root, binds its socket, gives it to nobody:www-data with mode
0660, and then serves and imports the app as nobody: nginx (www-data, through the group) reaches
it, and the same set-up with mode 0600 answers nginx with 502. A SIGHUP re-executes the process,
now nobody's, on the same socket (Debian's interpreter, which nobody can run); the pid file
keeps the same pid; SIGTERM removes it and the socket (nobody's folder)."""

from __future__ import annotations

import grp
import json
import os
import pwd
import signal
import time
from pathlib import Path

import pytest

from .harness import apps, client, logs, nginx, pythonpath
from .harness.apps import App
from .harness.backend import Backend
from .harness.fronts import Front
from .harness.net import free_port

TIMEOUT = 30.0
NGINX_USER = "www-data"


def ids_of(pid: int) -> list[int]:
    """The real, effective, saved and filesystem uids of a process."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return [int(uid) for uid in line.split()[1:]]
    raise AssertionError(f"no Uid line for {pid}")


def seen(front: Front) -> dict:
    response = client.get(front, front.url("/"), timeout=TIMEOUT)
    assert response.status == 200, response
    return json.loads(response.body)


def test_nginx_as_www_data_reaches_an_app_running_as_nobody(workroot, make_workdir) -> None:
    if os.geteuid() != 0:
        pytest.skip("starting as root and dropping to nobody needs root")
    try:
        nobody, www_data = pwd.getpwnam("nobody"), grp.getgrnam(NGINX_USER)
    except KeyError as e:
        pytest.skip(f"no {e} on this system")
    try:
        folder = pythonpath.fcgi_wsgi(apps.REPO, workroot)
    except RuntimeError as e:
        pytest.fail(f"building fcgi_wsgi failed: {e}", pytrace=False)
    workdir = make_workdir("privileges")
    run = workdir / "run"  # nobody's: the dropped process removes its files there at the end
    run.mkdir(mode=0o755)
    os.chown(run, nobody.pw_uid, nobody.pw_gid)

    def app(name: str, mode: str) -> App:
        argv = pythonpath.command(
            [folder],
            *("-m", "fcgi_wsgi", "--chdir", str(apps.REPO / "tests/apps"), "identity_app:app"),
            *("--user", "nobody", "--socket-owner", f"nobody:{NGINX_USER}", "--socket-mode", mode),
            *("--pid-file", str(run / f"{name}.pid")),
            # One process: the one the test checks serves, as nobody.
            *("--processes", "1"),
        )
        return App(name, argv=argv)

    open_app, closed_app = app("open", "0660"), app("closed", "0600")
    open_socket, closed_socket = run / "open.sock", run / "closed.sock"
    locations = nginx.location("/open", nginx.target(open_socket)) + nginx.location(
        "/closed", nginx.target(closed_socket)
    )
    server = nginx.Nginx(workdir, free_port(), "", locations)
    server.config.write_text(server.config.read_text().replace("user root;", f"user {NGINX_USER};"))
    with (
        Backend(open_app, open_socket, workdir, name="open") as backend,
        Backend(closed_app, closed_socket, workdir, name="closed"),
        server,
    ):
        front = Front("nginx", open_app, "/open", server, [backend])
        closed = Front("nginx", closed_app, "/closed", server, [])
        first = seen(front)
        assert first["pid"] == backend.pid
        assert first["euid"] == first["imported_as"][0] == nobody.pw_uid
        assert ids_of(backend.pid) == [nobody.pw_uid] * 4
        socket_file = open_socket.stat()
        assert (socket_file.st_mode & 0o777, socket_file.st_uid, socket_file.st_gid) == (
            0o660,
            nobody.pw_uid,
            www_data.gr_gid,
        )
        refused = client.get(closed, closed.url("/"), timeout=TIMEOUT)
        assert refused.status == 502, refused
        assert b"Permission denied" in server.error_log.read_bytes()

        # A reload re-executes the process, nobody's by now, on the same socket: the same pid,
        # still nobody, the pid file untouched.
        written = (run / "open.pid").stat().st_mtime_ns
        backend.process.signal(signal.SIGHUP)
        deadline = time.monotonic() + TIMEOUT
        while logs.count(backend.process.log, b"reloading: re-executing") < 1:
            assert time.monotonic() < deadline, backend.report()
            time.sleep(0.05)
        again = seen(front)
        assert (again["pid"], again["euid"]) == (backend.pid, nobody.pw_uid)
        assert (run / "open.pid").read_text() == f"{backend.pid}\n"
        assert (run / "open.pid").stat().st_mtime_ns == written

        backend.process.signal(signal.SIGTERM)
        assert backend.process.wait(timeout=15) == 0, backend.report()
    assert not (run / "open.pid").exists() and not open_socket.exists(), sorted(os.listdir(run))

"""Privileges and the socket: ``--user``/``--group`` taken after binding and before the app is
imported (in the one process, or in each worker process while the supervisor keeps root),
``--umask``, ``--socket-mode``, ``--socket-owner``, ``--backlog`` and ``--pid-file``, seen from
outside: /proc/PID/status, os.stat, ss(8) and the files left behind."""

from __future__ import annotations

import grp
import json
import os
import pwd
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import fcgi_wsgi
import pytest
from conftest import HERE, launch, wait_until_listening
from fcgi_client import request

NOBODY = pwd.getpwnam("nobody")
APPS = HERE.parent / "apps"
NOBODY_GROUP = grp.getgrgid(NOBODY.pw_gid).gr_name
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="changing the user needs root")


def serve(folder: Path, *args: str) -> tuple[subprocess.Popen, str, Path]:
    return launch(folder, *args, app="identity_app:app", chdir=APPS)


def ask(address: str) -> dict:
    response = request(address)
    assert b"200 OK" in response.stdout, response.stdout
    return json.loads(response.stdout.split(b"\r\n\r\n", 1)[1])


def ids_of(pid: int) -> tuple[list[int], list[int]]:
    """The real, effective, saved and filesystem uids and gids of a process, as the kernel has them."""
    status = Path(f"/proc/{pid}/status").read_text()
    fields = {line.split(":")[0]: line.split()[1:] for line in status.splitlines()}
    return [int(u) for u in fields["Uid"]], [int(g) for g in fields["Gid"]]


def backlog_of(address: str) -> int | None:
    """The listen backlog ss(8) reports for the Unix socket at `address` (its Send-Q)."""
    if shutil.which("ss") is None:
        return None
    listing = subprocess.run(["ss", "-lxn"], capture_output=True, text=True, check=True).stdout
    for line in listing.splitlines():
        fields = line.split()
        if address in fields:
            return int(fields[3])
    raise AssertionError(f"{address} not in ss -lxn:\n{listing}")


def started(process: subprocess.Popen, address: str, log: Path) -> dict:
    """Waits until the server answers (its signal handlers are in place by then), and returns
    what the app says."""
    wait_until_listening(process, address, log)
    return ask(address)


def stop(process: subprocess.Popen, log: Path) -> None:
    process.send_signal(signal.SIGTERM)
    assert process.wait(10) == 0, log.read_text()


@pytest.fixture
def nobodys_folder():
    """A folder nobody may write, whose parents nobody may cross (pytest's tmp_path is root's
    alone): the dropped process must be able to remove its pid and socket files there."""
    folder = Path(tempfile.mkdtemp(prefix="fcgi-priv-"))
    os.chown(folder, NOBODY.pw_uid, NOBODY.pw_gid)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@as_root
def test_one_process_binds_as_root_then_serves_and_imports_as_nobody(nobodys_folder):
    pid_file = nobodys_folder / "app.pid"
    process, address, log = serve(
        nobodys_folder,
        "--processes",
        "1",
        *("--user", "nobody", "--socket-mode", "0660", "--socket-owner", f"nobody:{NOBODY_GROUP}"),
        *("--umask", "027", "--backlog", "77", "--pid-file", str(pid_file)),
    )
    try:
        seen = started(process, address, log)
        assert seen["pid"] == process.pid
        assert (seen["uid"], seen["euid"], seen["gid"]) == (NOBODY.pw_uid, NOBODY.pw_uid, NOBODY.pw_gid)
        assert seen["groups"] == [NOBODY.pw_gid], "root's supplementary groups are gone"
        assert seen["imported_as"] == [NOBODY.pw_uid, NOBODY.pw_gid], "the app was imported before the drop"
        assert seen["umask"] == 0o027
        uids, gids = ids_of(process.pid)
        assert uids == [NOBODY.pw_uid] * 4 and gids == [NOBODY.pw_gid] * 4, "no saved root id to go back to"
        socket_file = os.stat(address)
        assert stat.S_IMODE(socket_file.st_mode) == 0o660
        assert (socket_file.st_uid, socket_file.st_gid) == (NOBODY.pw_uid, NOBODY.pw_gid)
        assert pid_file.read_text() == f"{process.pid}\n"
        assert backlog_of(address) in (77, None)
    finally:
        stop(process, log)
    assert not pid_file.exists(), "the pid file is removed at SIGTERM"
    assert not os.path.exists(address)


@as_root
def test_worker_processes_drop_while_the_supervisor_keeps_root_and_cleans_up(tmp_path):
    # tmp_path is root's alone: only a supervisor that kept root can remove the files there.
    pid_file = tmp_path / "app.pid"
    process, address, log = serve(
        tmp_path, "--processes", "2", "--user", "nobody", "--group", NOBODY_GROUP, "--pid-file", str(pid_file)
    )
    try:
        seen = started(process, address, log)
        assert pid_file.read_text() == f"{process.pid}\n", "the pid file names the supervisor"
        assert ids_of(process.pid)[0] == [0] * 4, "the supervisor keeps root"
        assert seen["pid"] != process.pid
        assert ids_of(seen["pid"])[0] == [NOBODY.pw_uid] * 4
        assert seen["imported_as"] == [NOBODY.pw_uid, NOBODY.pw_gid]
        assert stat.S_IMODE(os.stat(address).st_mode) & 0o777 == 0o777 & ~current_umask()
    finally:
        stop(process, log)
    assert not pid_file.exists() and not os.path.exists(address)


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@as_root
def test_changing_user_without_root_is_refused_before_binding(nobodys_folder):
    # Started as nobody: the interpreter may live where nobody cannot read it (root's pyenv), so
    # root starts it, parses the command line once (importing what that takes), becomes nobody,
    # then runs it.
    become_nobody = (
        "import os, sys, fcgi_wsgi.__main__ as cli, fcgi_wsgi._config as config; "
        "config.gather(sys.argv[1:], os.environ); "
        f"os.setgroups([]); os.setgid({NOBODY.pw_gid}); os.setuid({NOBODY.pw_uid}); sys.exit(cli.main())"
    )
    address, log = str(nobodys_folder / "app.sock"), nobodys_folder / "app.log"
    command = [sys.executable, "-c", become_nobody, "--chdir", str(APPS), "identity_app:app", "--bind", address]
    with log.open("wb") as log_file:
        process = subprocess.Popen([*command, "--user", "root"], stdin=subprocess.DEVNULL, stderr=log_file)
    assert process.wait(30) != 0
    said = log.read_text()
    assert "user root: changing the process's user or group needs root" in said, said
    assert not os.path.exists(address), "nothing was bound"


def test_the_pid_file_stays_across_a_reload_and_goes_at_the_stop(tmp_path):
    pid_file = tmp_path / "app.pid"
    # One process, which re-executes itself (and answers) with its pid.
    process, address, log = serve(tmp_path, "--pid-file", str(pid_file), "--processes", "1")
    try:
        started(process, address, log)
        assert pid_file.read_text() == f"{process.pid}\n"
        written = pid_file.stat().st_mtime_ns
        process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 20
        while "re-executing" not in log.read_text():
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        # The re-executed program (same pid) answers (the request waits in the backlog meanwhile),
        # and found its pid in the file: kept as it is.
        assert ask(address)["pid"] == process.pid
        assert pid_file.read_text() == f"{process.pid}\n"
        assert pid_file.stat().st_mtime_ns == written
    finally:
        stop(process, log)
    assert not pid_file.exists()


def test_a_pid_file_naming_a_running_process_is_refused(tmp_path):
    pid_file = tmp_path / "app.pid"
    pid_file.write_text(f"{os.getpid()}\n")
    process, address, log = serve(tmp_path, "--pid-file", str(pid_file))
    assert process.wait(30) != 0
    assert f"names process {os.getpid()}, which is running" in log.read_text()
    assert pid_file.read_text() == f"{os.getpid()}\n", "another server's pid file is left alone"
    assert not os.path.exists(address), "the socket bound is removed again"


@pytest.mark.parametrize("flag", ["preload", "reload"])
def test_importing_the_app_in_a_supervisor_that_keeps_root_is_refused(flag):
    with pytest.raises(ValueError, match="preload and reload would import the app in the supervisor"):
        fcgi_wsgi.serve_wsgi("identity_app:app", processes=2, user="nobody", **{flag: True})

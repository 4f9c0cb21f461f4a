"""The unit files of examples/systemd, run as systemd runs them.

systemd itself does not run here (no systemd as pid 1 in the test machine), so the test does
what it does, exactly: for myapp.socket it binds the socket (ListenStream, SocketMode, Backlog,
SocketGroup), then starts myapp.service's ExecStart in its WorkingDirectory, with its Environment,
the socket as fd 3, LISTEN_FDS=1 and LISTEN_PID set, in the process that then executes the
command, to that process's pid; `systemctl stop` is SIGTERM. The paths of the examples are
mapped into a temporary folder, the app to the test's, the user myapp to nobody. User= and Group=
are not applied: the interpreter here lives in root's home, which nobody cannot execute."""

from __future__ import annotations

import grp
import json
import os
import pwd
import shlex
import signal
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import HERE, wait_until_listening
from fcgi_client import request

EXAMPLES = HERE.parent.parent / "examples" / "systemd"
NOBODY = pwd.getpwnam("nobody")


def unit(name: str) -> dict[str, list[str]]:
    """Each key of a unit file, with its values in order (comments and sections left out)."""
    keys: dict[str, list[str]] = {}
    for line in (EXAMPLES / name).read_text().splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            keys.setdefault(key.strip(), []).append(value.strip())
    return keys


def mapped(text: str, folder: Path) -> str:
    """A path or argument of the examples, as this test runs it."""
    for example, here in (
        ("/srv/myapp/venv/bin/python", sys.executable),
        ("/srv/myapp", str(HERE.parent / "apps")),
        ("/etc/myapp/fcgi-wsgi.toml", str(folder / "fcgi-wsgi.toml")),
        ("/run/myapp.sock", str(folder / "myapp.sock")),
        ("/run/myapp", str(folder)),
    ):
        text = text.replace(example, here)
    return text


def service(name: str, folder: Path) -> tuple[list[str], dict[str, str], str]:
    """The command, environment and folder systemd would run `name` with."""
    keys = unit(name)
    # The example's config file, with the test's app.
    config = (EXAMPLES / "fcgi-wsgi.toml").read_text().replace('"mysite.wsgi:application"', '"identity_app:app"')
    assert "identity_app:app" in config
    (folder / "fcgi-wsgi.toml").write_text(config)
    command = [mapped(arg, folder) for arg in shlex.split(keys["ExecStart"][0])]
    environ = {key: value for key, value in os.environ.items() if not key.startswith(("LISTEN_", "FCGI_WSGI"))}
    for assignment in keys.get("Environment", []):
        key, _, value = assignment.partition("=")
        environ[key] = value
    return command, environ, mapped(keys["WorkingDirectory"][0], folder)


def parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def served_by(address: str) -> dict:
    response = request(address)
    assert b"200 OK" in response.stdout, response.stdout
    return json.loads(response.stdout.split(b"\r\n\r\n", 1)[1])


# What systemd does between fork and exec: the socket to fd 3, LISTEN_FDS, and LISTEN_PID naming
# this very process, which the exec keeps.
HAND_OVER = (
    "import os, sys; fd = int(sys.argv[1]); "
    "fd != 3 and (os.dup2(fd, 3), os.close(fd)); "
    "os.environ.update(LISTEN_FDS='1', LISTEN_PID=str(os.getpid())); "
    "os.execv(sys.argv[2], sys.argv[2:])"
)


def test_the_socket_activated_pair(tmp_path):
    socket_unit = unit("myapp.socket")
    address = mapped(socket_unit["ListenStream"][0], tmp_path)
    mode = int(socket_unit["SocketMode"][0], 8)
    # systemd binds the socket, with the unit's mode, group and backlog.
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(address)
    os.chmod(address, mode)
    if os.geteuid() == 0:
        os.chown(address, 0, grp.getgrnam(socket_unit["SocketGroup"][0]).gr_gid)
    listener.listen(int(socket_unit["Backlog"][0]))
    command, environ, folder = service("myapp.service", tmp_path)
    pid_file = tmp_path / "app.pid"
    assert f"--pid-file={pid_file}" in command or str(pid_file) in command
    log = tmp_path / "app.log"
    with log.open("wb") as log_file, listener:
        fd = listener.fileno()
        process = subprocess.Popen(
            [sys.executable, "-c", HAND_OVER, str(fd), *command],
            pass_fds=(fd,),
            env=environ,
            cwd=folder,
            stdin=subprocess.DEVNULL,
            stderr=log_file,
        )
        try:
            wait_until_listening(process, address, log)
            # A WSGI app gets a process per core by default: the service's own worker processes
            # serve systemd's socket (the service itself when there is one core).
            pid = served_by(address)["pid"]
            assert pid == process.pid or parent_of(pid) == process.pid, "the service serves systemd's socket itself"
            assert pid_file.read_text() == f"{process.pid}\n"
        finally:
            process.send_signal(signal.SIGTERM)  # systemctl stop
            assert process.wait(10) == 0, log.read_text()
        assert not pid_file.exists(), "the pid file goes at the stop"
        # The socket is systemd's: still there as it made it, and still listening for the next start.
        assert stat.S_IMODE(os.stat(address).st_mode) == mode
        with socket.socket(socket.AF_UNIX) as probe:
            probe.connect(address)


def test_the_example_config_passes_its_own_check(tmp_path):
    command, environ, folder = service("myapp.service", tmp_path)
    checked = subprocess.run([*command, "--check-config"], env=environ, cwd=folder, capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr
    assert "workers = 2  # file " in checked.stdout


@pytest.mark.skipif(os.geteuid() != 0, reason="the plain service starts as root and drops to its user")
def test_the_plain_service_binds_as_root_and_serves_as_its_user(tmp_path):
    command, environ, folder = service("myapp-plain.service", tmp_path)
    group = "www-data" if "www-data" in {g.gr_name for g in grp.getgrall()} else grp.getgrgid(NOBODY.pw_gid).gr_name
    command = [{"myapp": "nobody", "myapp:www-data": f"nobody:{group}"}.get(arg, arg) for arg in command]
    address, pid_file, log = str(tmp_path / "fcgi.sock"), tmp_path / "app.pid", tmp_path / "app.log"
    with log.open("wb") as log_file:
        process = subprocess.Popen(command, env=environ, cwd=folder, stdin=subprocess.DEVNULL, stderr=log_file)
    try:
        wait_until_listening(process, address, log)
        seen = served_by(address)
        assert seen["euid"] == seen["imported_as"][0] == NOBODY.pw_uid
        assert seen["pid"] != process.pid, "a worker process serves"
        assert pid_file.read_text() == f"{process.pid}\n"
        socket_file = os.stat(address)
        assert stat.S_IMODE(socket_file.st_mode) == 0o660
        assert (socket_file.st_uid, socket_file.st_gid) == (NOBODY.pw_uid, grp.getgrnam(group).gr_gid)
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(10) == 0, log.read_text()
    assert not pid_file.exists() and not os.path.exists(address)

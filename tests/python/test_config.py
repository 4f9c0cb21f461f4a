"""``--config FILE`` (TOML), ``FCGI_WSGI_ARGS`` and ``--check-config``: the precedence (flag over
environment over file over default), the two spellings of a key, and errors that name the key
and where it came from. Most cases ask ``gather`` in this process; the command line's own exit
codes and output, and a server driven by a file, run it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import fcgi_wsgi
import pytest
from conftest import HERE, wait_until_listening
from fcgi_client import request
from fcgi_wsgi._config import ENV, KINDS, OPTIONS, ConfigError, gather


def write(folder: Path, text: str) -> str:
    path = folder / "fcgi-wsgi.toml"
    path.write_text(text)
    return str(path)


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    environ = {key: value for key, value in os.environ.items() if key != ENV}
    return subprocess.run(
        [sys.executable, "-m", "fcgi_wsgi", *args], env={**environ, **(env or {})}, capture_output=True, text=True
    )


def test_every_kind_of_the_table_has_its_check():
    # A row of a new kind fails here rather than at the first file that sets it.
    assert {kind for _, kind, *_ in fcgi_wsgi.settings()} <= set(KINDS)
    assert {name for name, *_ in fcgi_wsgi.settings()} - set(OPTIONS) == {"force_cgi", "handle_signals"}


def test_a_flag_wins_over_the_environment_which_wins_over_the_file(tmp_path):
    config = write(
        tmp_path,
        'app = "file:app"\nworkers = 2\nmax-requests = 10\nread_timeout = 5\nsocket-mode = "0660"\n',
    )
    effective = gather(
        ["--config", config, "--workers", "4"],
        {ENV: "--workers 3 --max-requests 20 --umask 027", "FCGI_WSGI_START_DIR": "/nowhere"},
    )
    assert effective.values == {
        "app": "file:app",
        "workers": 4,
        "max_requests": 20,
        "read_timeout": 5.0,
        "socket_mode": "0660",
        "umask": "027",
    }
    assert effective.sources["workers"] == "flag"
    assert effective.sources["max_requests"] == effective.sources["umask"] == f"env {ENV}"
    assert effective.sources["read_timeout"] == effective.sources["app"] == f"file {config}"
    assert effective.serve_settings() == {
        "workers": 4,
        "max_requests": 20,
        "read_timeout": 5.0,
        "socket_mode": "0660",
        "umask": "027",
    }


def test_the_file_may_come_from_the_environment_and_a_relative_one_from_the_first_folder(tmp_path):
    write(tmp_path, 'app = "file:app"\nbind = "/run/app.sock"\n')
    effective = gather([], {ENV: "--config fcgi-wsgi.toml", "FCGI_WSGI_START_DIR": str(tmp_path)})
    assert effective.values == {"app": "file:app", "bind": "/run/app.sock"}
    assert effective.sources["bind"] == f"file {tmp_path / 'fcgi-wsgi.toml'}"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("max-request = 5\n", "max-request: unknown key (did you mean 'max-requests'?)"),
        ('workers = "four"\n', "workers: must be a whole number, 0 or more, not str 'four'"),
        ("read-timeout = true\n", "read-timeout: must be a number of seconds, not bool True"),
        ("preload = 1\n", "preload: must be true or false, not int 1"),
        ("max-requests = 5\nmax_requests = 6\n", "max_requests: given twice, as 'max-requests' and 'max_requests'"),
        ('config = "other.toml"\n', "config: is an option of the command line, not of a file"),
        ("[server]\nworkers = 2\n", "server: unknown key"),
        ("workers = \n", "config file"),
    ],
)
def test_a_bad_file_is_refused_naming_the_key(tmp_path, text, message):
    config = write(tmp_path, 'app = "x:app"\n' + text)
    with pytest.raises(ConfigError) as refused:
        gather(["--config", config], {})
    assert message in str(refused.value)
    assert config in str(refused.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("max_connections = 0\n", "max-connections (from file {config}): max_connections must be above 0"),
        ('log-level = "loud"\n', "log-level (from file {config}):"),
        ('user = "no-such-user-fcgi"\n', 'user (from file {config}): user: no user named "no-such-user-fcgi"'),
        ('socket-mode = "0999"\n', "socket-mode (from file {config}):"),
        ('bind = "nonsense"\n', "bind (from file {config}):"),
        ('debug-addresses = ["10.0.0.0/33"]\n', "debug-addresses (from file {config}):"),
    ],
)
def test_a_value_the_core_refuses_is_named_with_its_source(tmp_path, text, message):
    config = write(tmp_path, 'app = "x:app"\n' + text)
    with pytest.raises(ConfigError) as refused:
        gather(["--config", config], {})
    assert message.format(config=config) in str(refused.value)


def test_bad_command_lines_say_where_they_are():
    with pytest.raises(ConfigError, match=f"^{ENV}: argument --workers: expected one argument"):
        gather(["x:app"], {ENV: "--workers"})
    with pytest.raises(ConfigError, match=f"^{ENV}: No closing quotation"):
        gather(["x:app"], {ENV: "--bind 'unix:/x"})
    with pytest.raises(ConfigError, match="^command line: argument --workers: invalid int value: 'many'"):
        gather(["x:app", "--workers", "many"], {})
    with pytest.raises(ConfigError, match="^max-connections \\(from flag\\)"):
        gather(["x:app", "--max-connections", "0"], {})
    with pytest.raises(ConfigError, match="^app: not given"):
        gather(["--workers", "2"], {})


def test_check_config_prints_every_setting_with_its_source_and_exits(tmp_path):
    config = write(tmp_path, 'app = "semantics_app:app"\nmax_requests = 10\nread-timeout = 5\n')
    checked = cli("--check-config", "--config", config, "--workers", "4", env={ENV: "--max-requests 20"})
    assert checked.returncode == 0, checked.stderr
    lines = checked.stdout.splitlines()
    assert 'app = "semantics_app:app"  # file ' + config in lines
    assert "workers = 4  # flag" in lines
    assert f"max-requests = 20  # env {ENV}" in lines
    assert f"read-timeout = 5.0  # file {config}" in lines
    assert "# idle-timeout: 90 (default)" in lines
    assert "# pid-file: none (default)" in lines
    # One line per option, whatever its source.
    assert len(lines) == len({line.split()[1 if line.startswith("#") else 0].rstrip(":") for line in lines})


def test_check_config_exits_non_zero_naming_a_misspelt_key(tmp_path):
    config = write(tmp_path, 'app = "x:app"\nmax-reqests = 10\n')
    checked = cli("--check-config", "--config", config)
    assert checked.returncode == 2
    assert checked.stdout == ""
    assert f"config file {config}: max-reqests: unknown key (did you mean 'max-requests'?)" in checked.stderr


def test_an_asgi_setting_for_a_wsgi_app_is_refused_alike_by_the_check_and_serve_wsgi(tmp_path):
    config = write(tmp_path, 'app = "x:app"\nlifespan = "on"\n')
    with pytest.raises(ConfigError, match=f"^lifespan \\(from file {config}\\): is a setting of an ASGI app"):
        gather(["--config", config], {})
    with pytest.raises(ConfigError, match="^max-concurrency \\(from flag\\): is a setting of an ASGI app"):
        gather(["x:app", "--max-concurrency", "10"], {})
    assert gather(["x:app", "--interface", "asgi", "--lifespan", "on", "--max-concurrency", "10"], {}).values
    with pytest.raises(ValueError, match="^lifespan is a setting of an ASGI app"):
        fcgi_wsgi.serve_wsgi(lambda environ, start_response: [], lifespan="off")


def test_a_server_takes_its_settings_from_the_file(tmp_path):
    address = str(tmp_path / "app.sock")
    # One process: max-requests then stops the server (a pool would replace its process).
    config = write(
        tmp_path,
        f'app = "semantics_app:app"\nchdir = "{HERE}"\nbind = "{address}"\nsocket_mode = "0600"\n'
        f'pid-file = "{tmp_path / "app.pid"}"\nworkers = 2\nprocesses = 1\n',
    )
    log = tmp_path / "app.log"
    environ = {key: value for key, value in os.environ.items() if key != ENV}
    with log.open("wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "fcgi_wsgi"],
            env={**environ, ENV: f"--config {config} --max-requests 1"},
            stdin=subprocess.DEVNULL,
            stderr=log_file,
        )
    try:
        wait_until_listening(process, address, log)
        # The pid file follows the bind by a moment.
        deadline = time.monotonic() + 10
        while not (tmp_path / "app.pid").exists():
            assert time.monotonic() < deadline and process.poll() is None, log.read_text()
            time.sleep(0.01)
        assert (tmp_path / "app.pid").read_text() == f"{process.pid}\n"
        assert os.stat(address).st_mode & 0o777 == 0o600
        assert b"200 OK" in request(address, "/environ").stdout
        # max-requests 1, from FCGI_WSGI_ARGS: the one request stops the server.
        assert process.wait(10) == 0, log.read_text()
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(10)
    assert not (tmp_path / "app.pid").exists()

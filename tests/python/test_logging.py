"""The server's log records in Python's `logging`: the server's own messages on stderr in
gunicorn's shape by default and filtered by `--log-level`; access lines from `--access-logfile`;
access records in Django's `LOGGING` when it routes the logger `fcgi_wsgi.access`."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from conftest import start, wait_until_listening
from fcgi_client import request

DJANGO_SITE = Path(__file__).resolve().parents[2] / "examples" / "django"
#: gunicorn's error-log line: `[2026-12-04 18:56:08 +0000] [1234] [WARNING] message`.
ERROR_LINE = (
    rb"\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{4}\] \[%d\] \[WARNING\] refused a 2000-byte body: the limit is 1000"
)


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    assert process.wait(10) == 0


def test_the_servers_messages_reach_stderr_in_gunicorns_shape(tmp_path):
    # One process: the line names the pid of the process that refused the body.
    process, address, log = start(tmp_path, "--max-body-bytes", "1000", "--processes", "1")
    assert request(address, "/", "POST", b"x" * 2000).status == 413
    stop(process)
    assert re.search(ERROR_LINE % process.pid, log.read_bytes()), log.read_text()


def test_log_level_error_leaves_warnings_out(tmp_path):
    process, address, log = start(tmp_path, "--max-body-bytes", "1000", "--log-level", "error")
    assert request(address, "/", "POST", b"x" * 2000).status == 413
    assert request(address, "/environ").status == 200
    stop(process)
    assert b"refused a 2000-byte body" not in log.read_bytes()


def test_an_access_logfile_of_dash_writes_lines_to_stderr(tmp_path):
    process, address, log = start(tmp_path, "--access-logfile", "-", "--access-logformat", "%(m)s %(U)s %(s)s")
    assert request(address, "/environ?x=1").status == 200
    assert request(address, "/no/such", "PUT", b"body").status == 404
    stop(process)
    lines = re.findall(rb"^(?:GET|PUT) \S+ \d{3}$", log.read_bytes(), re.M)
    # In the order the requests ended, which threads may log in either order.
    assert sorted(lines) == [b"GET /environ 200", b"PUT /no/such 404"], log.read_text()


def test_djangos_logging_receives_the_access_records(tmp_path):
    address, records = str(tmp_path / "django.sock"), tmp_path / "access.log"
    command = [sys.executable, "-m", "fcgi_wsgi", "--chdir", str(DJANGO_SITE), "demo_site.wsgi", "--bind", address]
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL, env={**os.environ, "DEMO_ACCESS_LOG": str(records)})
    wait_until_listening(process, address, within=30)
    try:
        statuses = [request(address, path).status for path in ("/", "/no/such/page/", "/boom/")]
    finally:
        stop(process)
    assert statuses == [200, 404, 500]
    deadline = time.monotonic() + 5
    while len(lines := records.read_text().splitlines()) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    # The default format: Apache's combined log format, one record per request.
    requests = sorted(re.search(r'"(GET \S+ HTTP/1.1)" (\d{3}) ', line).groups() for line in lines)
    expected = [("GET / HTTP/1.1", "200"), ("GET /boom/ HTTP/1.1", "500"), ("GET /no/such/page/ HTTP/1.1", "404")]
    assert requests == expected


def test_a_slow_request_is_logged_once_with_the_stack_of_its_thread(tmp_path):
    # One process: /server_stats gives the counters of the process that answers it.
    process, address, log = start(tmp_path, "--slow-request-timeout", "0.3", "--workers", "2", "--processes", "1")
    assert request(address, "/slow_view?1.2").status == 200
    assert json.loads(request(address, "/server_stats").body)["slow_requests"] == 1
    stop(process)
    said = log.read_text()
    records = [line for line in said.splitlines() if "[WARNING] slow request:" in line]
    # One record, while it ran (past 0.3 s, before its 1.2 s were up), with the function it sleeps in.
    assert len(records) == 1, said
    seconds = float(re.search(r"GET /slow_view\?1.2 has run for ([\d.]+) s", records[0]).group(1))
    assert 0.3 <= seconds < 1.2, records
    assert "in waits_on_a_slow_backend\n    time.sleep(seconds)" in said, said

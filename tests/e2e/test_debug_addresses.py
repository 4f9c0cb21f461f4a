"""Tracebacks for chosen clients only: `serve_wsgi(app, bind, debug=["127.0.0.1", "::1", "10.0.0.0/8"])`
behind nginx.

One app (tests/apps/wsgi_echo.py, whose /fail raises), one nginx location per client address:
each location sets `fastcgi_param REMOTE_ADDR` after the usual params, as a config does after
`include fastcgi_params` (nginx then sends the name twice; the app keeps the later one). No
traffic goes to those addresses: they are what the app is told about its client. A client in
the list gets the traceback in the 500 page, any other the short page; the traceback reaches
nginx's error log (FCGI_STDERR) either way.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from .harness import apps, client, logs, nginx, pythonpath, selection
from .harness.apps import App
from .harness.backend import Backend
from .harness.fronts import Front
from .harness.net import free_port

DEBUG = ["127.0.0.1", "::1", "10.0.0.0/8"]
SERVE = f"""\
import sys
from fcgi_wsgi import serve_wsgi
from wsgi_echo import app
serve_wsgi(app, sys.argv[sys.argv.index("--bind") + 1], debug={DEBUG!r})
"""
# REMOTE_ADDR → whether that client sees tracebacks.
ADDRESSES = {
    "127.0.0.1": True,
    "192.0.2.7": False,
    "10.20.30.40": True,
    "11.0.0.1": False,
    "::1": True,
    "2001:db8::7": False,
    "::ffff:10.1.2.3": True,  # an IPv4-mapped IPv6 address is its IPv4 address
}
FAILURE = b"RuntimeError: the app failed on purpose"
TRACEBACK = b"Traceback (most recent call last)"
SHORT_PAGE = b"Internal Server Error\n"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "debug_front" in metafunc.fixturenames:
        chosen = selection.params(metafunc.config, {"nginx": ("nginx", "python-echo")})
        metafunc.parametrize("debug_front", chosen, indirect=True, scope="module")


def prefix(address: str) -> str:
    return "/as-" + address.replace(":", "-")


def location(address: str, socket: Path) -> str:
    """nginx.location's params, then `fastcgi_param REMOTE_ADDR address`."""
    text = nginx.location(prefix(address), nginx.target(socket))
    anchor = "            fastcgi_pass "
    assert anchor in text
    return text.replace(anchor, f"            fastcgi_param REMOTE_ADDR {address};\n{anchor}", 1)


def logged_entry(error_log: bytes, marker: str) -> bytes:
    """nginx's entry for the request carrying `marker`: its stderr, which spans several lines."""
    match = re.search(b"error in GET [^\n]*" + marker.encode() + rb".*?(?=\n\d{4}/\d\d/\d\d |\Z)", error_log, re.DOTALL)
    assert match, f"no entry for {marker}"
    return match[0]


@pytest.fixture(scope="module")
def debug_front(request: pytest.FixtureRequest, workroot: Path, make_workdir) -> Iterator[Front]:
    try:
        apps.python_echo(workroot)  # wsgi_echo.py beside the fcgi_wsgi package
        folder = pythonpath.fcgi_wsgi(apps.REPO, workroot)
    except RuntimeError as e:
        pytest.fail(f"setting up python-echo failed: {e}", pytrace=False)
    app = App("python-echo-debug-list", argv=pythonpath.command([folder], "-c", SERVE))
    workdir = make_workdir("debug-addresses")
    socket = workdir / "app.sock"
    locations = "".join(location(address, socket) for address in ADDRESSES)
    with (
        Backend(app, socket, workdir) as backend,
        nginx.Nginx(workdir, free_port(), "", locations) as server,
    ):
        yield Front(request.param, app, "", server, [backend])


@pytest.mark.parametrize("address", list(ADDRESSES))
def test_traceback_only_for_listed_clients(debug_front: Front, address: str) -> None:
    seen = client.get(debug_front, f"{prefix(address)}/env")
    assert f"REMOTE_ADDR={address}" in seen.body.decode("latin-1").splitlines(), seen
    marker = secrets.token_hex(6)
    response = client.get(debug_front, f"{prefix(address)}/fail?request={marker}")
    assert response.status == 500, response
    if ADDRESSES[address]:
        assert TRACEBACK in response.body and FAILURE in response.body, response
    else:
        assert response.body == SHORT_PAGE, response
    # The traceback reaches the web server's error log whoever the client is: the very text a
    # listed client got.
    error_log = debug_front.server.error_log
    assert logs.wait_for([error_log], marker.encode()), f"{marker} not in {error_log}"
    entry = logged_entry(error_log.read_bytes(), marker)
    assert TRACEBACK in entry and FAILURE in entry, entry
    if ADDRESSES[address]:
        assert response.body.rstrip(b"\n") in entry, entry  # nginx drops the last newline

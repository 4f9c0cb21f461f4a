"""Every setting of the core's table (`fcgi_wsgi.settings()`, docs/SETTINGS.md) is offered by this
face: a `serve_wsgi` keyword, read by the native `serve`, a command-line flag and a typed line in
the stub. A knob added to the table and forgotten here fails this test."""

from __future__ import annotations

import inspect
import subprocess
import sys
from pathlib import Path

import fcgi_wsgi
import pytest
from fcgi_wsgi import _fcgi_wsgi

NAMES = [name for name, *_ in fcgi_wsgi.settings()]
STUB = (Path(fcgi_wsgi.__file__).parent / "_fcgi_wsgi.pyi").read_text()
HELP = subprocess.run(
    [sys.executable, "-m", "fcgi_wsgi", "--help"], capture_output=True, text=True, check=True, timeout=60
).stdout


def test_the_table_is_the_cores():
    assert {"workers", "read_timeout", "head_timeout", "graceful_timeout", "max_params"} <= set(NAMES)
    kinds = {name: kind for name, kind, *_ in fcgi_wsgi.settings()}
    assert kinds["read_timeout"] == "seconds" and kinds["workers"] == "count"


@pytest.mark.parametrize("name", NAMES)
def test_every_setting_is_a_serve_wsgi_keyword(name):
    assert name in inspect.signature(fcgi_wsgi.serve_wsgi).parameters


@pytest.mark.parametrize("name", NAMES)
def test_the_native_serve_reads_every_setting_by_its_kind(name):
    # A value of no kind at all is refused, naming the setting, before anything is served.
    with pytest.raises(TypeError, match=name):
        _fcgi_wsgi.serve(lambda environ, start_response: [], lambda environ, error: b"", settings={name: object()})


def test_the_native_serve_refuses_a_setting_the_table_lacks():
    with pytest.raises(ValueError, match='there is no setting "no_such"'):
        _fcgi_wsgi.serve(lambda environ, start_response: [], lambda environ, error: b"", settings={"no_such": 1})


@pytest.mark.parametrize("name", NAMES)
def test_every_setting_is_in_the_stub(name):
    assert f"    {name}: " in STUB


@pytest.mark.parametrize("name", [n for n in NAMES if n not in ("force_cgi", "handle_signals")])
def test_every_tunable_setting_is_a_command_line_flag(name):
    # force_cgi is --cgi there; handle_signals is for programs that embed the server.
    assert f"--{name.replace('_', '-')}" in HELP

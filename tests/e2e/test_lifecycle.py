"""Process lifecycle under load: restarts and shutdowns must not lose requests."""

from __future__ import annotations

import signal

import pytest

from .harness import client, logs
from .harness.apache import Apache
from .harness.fronts import Front, apache_fcgid, nginx_two_backends
from .harness.stream import RequestStream

# mod_fcgid's words when an app outlives its SIGTERM and gets SIGKILLed.
KILL_MESSAGES = (b"graceful kill fail", b"still did not exit")
# Apache says it once at start and once when a graceful restart is done, which mod_fcgid holds
# back until the old app processes are gone (or killed after ~9 s).
RESTARTED = b"resuming normal operations"
# mod_fcgid's lines for each app process it started, and that went away (with how it ended).
SPAWNED = b") started"
EXITED = b"exit(shutting down)"
THREADS = 4


@pytest.fixture
def fcgid_front(app, make_workdir):
    with apache_fcgid(app, make_workdir(f"graceful-{app.name}")) as front:
        yield front


@pytest.fixture
def balanced_front(app, make_workdir):
    with nginx_two_backends(app, make_workdir(f"balanced-{app.name}")) as front:
        yield front


def test_fcgid_graceful_restart_loses_no_request(fcgid_front: Front) -> None:
    """`apache2 -k graceful` while requests flow: mod_fcgid SIGTERMs the app processes, which
    finish what they serve and exit; Apache's new generation spawns new ones."""
    apache = fcgid_front.server
    assert isinstance(apache, Apache)
    with RequestStream(fcgid_front, fcgid_front.url("/slow?ms=200"), threads=THREADS) as stream:
        # One app process per thread first: a restart while mod_fcgid waits on a spawn can
        # hang that request in mod_fcgid itself, whatever the app does.
        assert logs.wait_for([apache.error_log], SPAWNED, timeout=20, times=THREADS)
        stream.wait_for(len(stream.outcomes) + 2 * THREADS)
        apache.graceful()
        assert logs.wait_for([apache.error_log], RESTARTED, timeout=30, times=2), "no restart"
        stream.wait_for(len(stream.outcomes) + 16)
    assert stream.failures() == []
    for message in KILL_MESSAGES:
        assert logs.lines_with(apache.error_log, message) == []
    exits = logs.lines_with(apache.error_log, EXITED)
    assert exits, "mod_fcgid stopped no app process"
    assert [line for line in exits if b"return code: 0" not in line] == []


def test_nginx_balances_two_backends(balanced_front: Front) -> None:
    pids = set()
    for _ in range(40):
        response = client.get(balanced_front, balanced_front.url("/pid"))
        assert response.status == 200, response
        pids.add(int(response.body))
    assert pids == {backend.pid for backend in balanced_front.backends}


def test_sigterm_one_backend_mid_stream(balanced_front: Front) -> None:
    """The stopped backend finishes its requests and exits 0; nginx sends the rest to the other."""
    victim, survivor = balanced_front.backends
    with RequestStream(balanced_front, balanced_front.url("/slow?ms=50"), threads=4) as stream:
        stream.wait_for(20)
        victim.process.signal(signal.SIGTERM)
        status = victim.process.wait(timeout=15)
        stream.wait_for(len(stream.outcomes) + 20)
    assert stream.failures() == []
    assert status == 0, f"{victim.process.name} exited with {status} on SIGTERM"
    assert survivor.process.poll() is None

"""HAProxy multiplexing FastCGI requests onto shared connections (`option mpxs-conns`), the one
mainstream server that does, in front of the Rust echo and the Python face's echo.

The app runs with `--workers W --multiplex M`; an `FcgiTap` between HAProxy and the app records
which request ids each FastCGI connection carried and how many were in flight at once, and the
app's `/stats` counts the connections it accepted. `--front haproxy` and `--app` narrow it down.

HAProxy reads FCGI_MAX_REQS as a limit per connection (its manual: "It only limits the number of
streams per connection"); the core refuses every request past `--multiplex` on one connection
with END_REQUEST(FCGI_OVERLOADED), which HAProxy 2.6 answers 500 or leaves hanging. So with
multiplexing the core answers FCGI_MAX_REQS = `--multiplex` (it used to answer workers x
multiplex), and the traffic tests run with `option get-values`, as a deployment would.
"""

from __future__ import annotations

import collections
import hashlib
import random
import threading
from dataclasses import dataclass

from .harness import client, fcgi_tap, selection
from .harness.apps import App
from .harness.fronts import Front, haproxy_multiplexed

APPS = ("rust-echo", "python-echo", "asgi-echo")
MIB = 1 << 20
HANG_LIMIT = 90.0
"""Seconds after which a request still unanswered counts as hung (each takes well under one)."""
SERVICE_UNAVAILABLE = b"Service Unavailable\n"


pytest_generate_tests, haproxy_app = selection.module_apps("haproxy", haproxy_app=APPS)


@dataclass
class Upload:
    """One POST /echo: what was sent and what came back."""

    body: bytes
    status: int | None = None
    answer: bytes = b""
    error: str = ""

    @property
    def echoed(self) -> bool:
        return self.status == 200 and hashlib.sha256(self.answer).digest() == hashlib.sha256(self.body).digest()


def upload_all(front: Front, uploads: list[Upload]) -> list[Upload]:
    """Every upload at once, each on its own HTTP connection; those still running after
    HANG_LIMIT are returned."""
    start = threading.Barrier(len(uploads), timeout=30)

    def send(upload: Upload) -> None:
        try:
            start.wait()
            response = client.request(front, "POST", front.url("/echo"), upload.body, timeout=HANG_LIMIT)
            upload.status, upload.answer = response.status, response.body
        except Exception as e:  # noqa: BLE001 - reported by the test
            upload.error = f"{type(e).__name__}: {e}"

    threads = [threading.Thread(target=send, args=(u,), daemon=True) for u in uploads]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(HANG_LIMIT + 30)
    return [u for u, thread in zip(uploads, threads, strict=True) if thread.is_alive()]


def stats(front: Front) -> tuple[int, int]:
    """The app's (connections accepted, requests served), through HAProxy."""
    response = client.get(front, front.url("/stats"))
    assert response.status == 200, response
    fields = dict(pair.split("=") for pair in response.body.decode().split())
    return int(fields["connections"]), int(fields["requests"])


def get_values(tap: fcgi_tap.FcgiTap) -> dict[bytes, bytes]:
    answers = {c.get_values_result for c in tap.connections if c.get_values_result}
    assert len(answers) == 1, f"GET_VALUES_RESULT bodies seen: {answers}"
    return fcgi_tap.get_values_pairs(answers.pop())


def still_serves(front: Front) -> None:
    response = client.get(front, front.url("/hello"), timeout=30)
    assert (response.status, response.body) == (200, b"Hello, world!"), response


def test_32_concurrent_uploads_are_multiplexed_and_echoed_byte_exact(haproxy_app: App, make_workdir) -> None:
    """32 concurrent POSTs of 1-4 MiB random bodies through HAProxy (`--workers 32 --multiplex 8`,
    `option max-reqs 8`): every answer is a 200 with the body byte-exact (SHA-256); on the wire
    several request ids were in flight on one FastCGI connection, and the app accepted fewer
    connections than there were requests. (With fewer workers than requests, some are 503 by
    design: the next test.)"""
    rng = random.Random(32)
    uploads = [Upload(rng.randbytes(rng.randint(MIB, 4 * MIB))) for _ in range(32)]
    workdir = make_workdir(f"haproxy-{haproxy_app.name}")
    with haproxy_multiplexed(haproxy_app, workdir, workers=32, multiplex=8, max_reqs=8) as front:
        still_serves(front)
        connections_before, requests_before = stats(front)
        hung = upload_all(front, uploads)
        assert hung == [], f"{len(hung)} uploads still unanswered after {HANG_LIMIT:.0f} s"
        failed = [(u.status, len(u.body), len(u.answer), u.error) for u in uploads if not u.echoed]
        assert failed == [], f"{len(failed)} of {len(uploads)} uploads not echoed byte-exact: {failed}"
        still_serves(front)
        connections_after, requests_after = stats(front)
        tap = front.tap
        assert tap is not None

        new_connections = connections_after - connections_before
        assert requests_after - requests_before >= len(uploads) + 1
        assert 1 <= new_connections < len(uploads), f"{new_connections} connections for {len(uploads)} requests"
        begun = sum(len(c.begun) for c in tap.connections)
        assert begun >= len(uploads) + 3, f"the tap saw {begun} requests begin"
        most = max(c.most_in_flight for c in tap.connections)
        assert most >= 2, f"never more than {most} request in flight on one FastCGI connection: no multiplexing"
        ended = collections.Counter(id_ for c in tap.connections for id_ in c.ended)
        print(
            f"{haproxy_app.name}: {len(uploads)} uploads ({sum(len(u.body) for u in uploads) // MIB} MiB) all echoed; "
            f"the app accepted {new_connections} connections for {requests_after - requests_before} requests; "
            f"tap: {len(tap.connections)} connections, requests per connection "
            f"{[len(c.begun) for c in tap.connections]}, most in flight on one {most}, "
            f"{len(ended)} distinct request ids"
        )


def test_fewer_workers_than_multiplexed_requests_end_every_request(haproxy_app: App, make_workdir) -> None:
    """`--workers 1 --multiplex 4`: 12 concurrent 3 MiB uploads, so requests whose bodies arrive
    while the one worker is busy: every request ends, with a 200 byte-exact or the 503 the app
    gives a request no worker took in time; none hangs, and the app serves afterwards."""
    rng = random.Random(4)
    uploads = [Upload(rng.randbytes(3 * MIB)) for _ in range(12)]
    workdir = make_workdir(f"haproxy-1w-{haproxy_app.name}")
    with haproxy_multiplexed(haproxy_app, workdir, workers=1, multiplex=4, max_reqs=4) as front:
        hung = upload_all(front, uploads)
        assert hung == [], f"{len(hung)} uploads still unanswered after {HANG_LIMIT:.0f} s: a hang"
        outcomes = collections.Counter(
            "200 byte-exact"
            if u.echoed
            else "503"
            if (u.status, u.answer) == (503, SERVICE_UNAVAILABLE)
            else f"{u.status} {u.answer[:60]!r} {u.error}"
            for u in uploads
        )
        assert set(outcomes) <= {"200 byte-exact", "503"}, outcomes
        still_serves(front)
        tap = front.tap
        assert tap is not None
        most = max(c.most_in_flight for c in tap.connections)
        assert most >= 2, f"never more than {most} request in flight on one connection: the one worker was never short"
        print(f"{haproxy_app.name}, 1 worker: {dict(outcomes)}; most in flight on one connection {most}")


def test_get_values_max_reqs_is_the_per_connection_limit(haproxy_app: App, make_workdir) -> None:
    """HAProxy with `option get-values` asks FCGI_MAX_REQS and FCGI_MPXS_CONNS when it opens a
    connection; to HAProxy FCGI_MAX_REQS is how many requests it may send on that connection,
    so the app (`--workers 2 --multiplex 8`) must answer 8, the most it accepts on one."""
    workdir = make_workdir(f"haproxy-gv-{haproxy_app.name}")
    with haproxy_multiplexed(haproxy_app, workdir, workers=2, multiplex=8, max_reqs=8) as front:
        still_serves(front)
        assert front.tap is not None
        assert get_values(front.tap) == {b"FCGI_MAX_REQS": b"8", b"FCGI_MPXS_CONNS": b"1"}

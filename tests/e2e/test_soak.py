"""Soak: many requests through nginx to the Python and the C echo apps, small and large bodies,
kept-alive and not on both sides, while the app's resident memory and open descriptors are
sampled from /proc: after a warm-up, neither may grow by more than a small bound.

`SOAK_REQUESTS` sets the number of requests (default 20,000, about 15 s per app on two cores);
the long run is `SOAK_REQUESTS=200000`.
"""

from __future__ import annotations

import collections
import hashlib
import http.client
import os
import random
import threading
import time
from dataclasses import dataclass, field

import pytest

from .harness import contract, procfs, selection
from .harness.apps import App
from .harness.fronts import FRONTS, Front
from .harness.procfs import MIB

SOAK_REQUESTS = int(os.environ.get("SOAK_REQUESTS", "20000"))
SOAK_APPS = ("python-echo", "c-echo")
WARMUP = max(2000, SOAK_REQUESTS // 10)
THREADS = 4
SMALL = 1024
LARGE = 256 * 1024
RSS_BOUND = 8 * MIB
FD_BOUND = 8
"""Kept FastCGI connections that nginx's pool (8 per worker) holds at a quiet moment vary a little."""


pytest_generate_tests, soak_app = selection.module_apps("nginx", soak_app=SOAK_APPS)


@pytest.fixture(scope="module")
def soak_front(soak_app: App, make_workdir):
    """nginx with two locations onto one app: `/app` opens a FastCGI connection per request,
    `/ka` keeps them (KEEP_CONN, upstream keepalive)."""
    with FRONTS["nginx"](soak_app, make_workdir(f"soak-{soak_app.name}")) as front:
        yield front


@dataclass
class Tally:
    done: int = 0
    kinds: collections.Counter[str] = field(default_factory=collections.Counter)
    failures: list[str] = field(default_factory=list)


def one_request(conn: http.client.HTTPConnection, prefix: str, kind: str, rng: random.Random) -> str | None:
    """Sends one request of `kind` and checks the answer: None, or what was wrong."""
    if kind == "hello":
        conn.request("GET", f"{prefix}/hello")
        expected = contract.HELLO
    elif kind in ("small", "large"):
        body = rng.randbytes(SMALL if kind == "small" else LARGE)
        conn.request("POST", f"{prefix}/echo", body=body, headers={"Content-Type": "application/octet-stream"})
        expected = body
    elif kind == "big":
        conn.request("GET", f"{prefix}/big?n={LARGE}")
        expected = None
    else:
        conn.request("GET", f"{prefix}/env?soak={rng.randrange(1 << 30)}")
        expected = None
    response = conn.getresponse()
    got = response.read()
    if response.status != 200:
        return f"{kind} via {prefix}: HTTP {response.status} {got[:200]!r}"
    if kind == "big":
        if hashlib.sha256(got).hexdigest() != contract.big_sha256(LARGE):
            return f"big via {prefix}: {len(got)} bytes, damaged"
    elif kind == "env":
        if b"REQUEST_URI=" not in got:
            return f"env via {prefix}: {got[:200]!r}"
    elif got != expected:
        return f"{kind} via {prefix}: {len(got)} bytes, not what was sent"
    return None


KINDS = ("hello",) * 14 + ("small",) * 3 + ("large", "big", "env")
"""70% /hello, 15% small POSTs, 5% each: 256 KiB POSTs echoed, 256 KiB responses, /env."""


def drive(front: Front, requests: int, seed: int) -> Tally:
    """`requests` mixed requests from `THREADS` threads: each picks, per request, its kind,
    nginx's location (`/app`: a FastCGI connection per request, `/ka`: kept) and whether to
    reuse its HTTP connection to nginx."""
    tally = Tally()
    lock = threading.Lock()

    def run(index: int, count: int) -> None:
        rng = random.Random(seed * 100 + index)
        conn: http.client.HTTPConnection | None = None
        for _ in range(count):
            kind = rng.choice(KINDS)
            prefix = rng.choice(("/app", "/ka"))
            if conn is None or rng.random() < 0.5:
                if conn is not None:
                    conn.close()
                conn = http.client.HTTPConnection(front.host, front.port, timeout=60)
            try:
                failure = one_request(conn, prefix, kind, rng)
            except (OSError, http.client.HTTPException) as e:
                failure = f"{kind} via {prefix}: {type(e).__name__}: {e}"
                conn.close()
                conn = None
            with lock:
                tally.done += 1
                tally.kinds[kind] += 1
                if failure:
                    tally.failures.append(failure)
        if conn is not None:
            conn.close()

    shares = [requests // THREADS + (1 if i < requests % THREADS else 0) for i in range(THREADS)]
    threads = [threading.Thread(target=run, args=(i, share)) for i, share in enumerate(shares)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return tally


def test_soak_memory_and_descriptors_stay_flat(soak_front: Front) -> None:
    pid = soak_front.backends[0].pid
    start = time.monotonic()
    with procfs.Sampler(pid, interval=0.05) as sampler:
        warm_phase = sampler.mark()
        warm = drive(soak_front, WARMUP, seed=1)
        after_warmup = procfs.settled(pid)
        main_phase = sampler.mark()
        main = drive(soak_front, SOAK_REQUESTS - WARMUP, seed=2)
        at_end = procfs.settled(pid)
    elapsed = time.monotonic() - start
    failures = warm.failures + main.failures
    assert failures == [], f"{len(failures)} failed requests, the first: {failures[:5]}"
    assert warm.done + main.done == SOAK_REQUESTS
    warm_peak, main_peak = sampler.peak(warm_phase), sampler.peak(main_phase)
    print(
        f"{soak_front.app.name}: {SOAK_REQUESTS} requests in {elapsed:.1f} s ({dict(warm.kinds + main.kinds)}); "
        f"after the warm-up ({WARMUP}): {after_warmup}; at the end: {at_end}; "
        f"peaks: warm-up {warm_peak}, then {main_peak} ({sampler.count()} samples)"
    )
    assert at_end.rss <= after_warmup.rss + RSS_BOUND, f"RSS grew: {after_warmup} -> {at_end}"
    assert at_end.fds <= after_warmup.fds + FD_BOUND, f"descriptors grew: {after_warmup} -> {at_end}"
    assert main_peak.rss <= warm_peak.rss + RSS_BOUND, f"peak RSS grew: {warm_peak} -> {main_peak}"
    assert main_peak.fds <= warm_peak.fds + FD_BOUND, f"peak descriptors grew: {warm_peak} -> {main_peak}"

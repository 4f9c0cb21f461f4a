"""Memory flatness: a 1 GiB upload and a 1 GiB download through nginx to the Python echo app,
both streamed (nginx buffers neither way), keep the app's peak resident memory within 32 MiB of
its idle RSS. The upload goes to /sha256, which reads wsgi.input in chunks; the download is
/big, a generator. The peak is the larger of VmRSS sampled every 10 ms and the kernel's own
high-water mark (VmHWM, reset before each transfer).

`MEMORY_TRANSFER_BYTES` sets the size (default 1 GiB).
"""

from __future__ import annotations

import hashlib
import http.client
import os
import time
from collections.abc import Iterator

import pytest

from .harness import client, contract, procfs, selection
from .harness.apps import App
from .harness.fronts import Front
from .harness.procfs import MIB
from .harness.stress import nginx_streaming

TRANSFER = int(os.environ.get("MEMORY_TRANSFER_BYTES", str(1 << 30)))
MEMORY_APPS = ("python-echo", "asgi-echo")
PEAK_BOUND = 32 * MIB
BLOCK = bytes(range(contract.BIG_PERIOD)) * 4096
"""Whole periods of the /big pattern (about 1 MiB): repeated, byte i is i % 251."""


pytest_generate_tests, memory_app = selection.module_apps("nginx", memory_app=MEMORY_APPS)


@pytest.fixture(scope="module")
def streaming_front(memory_app: App, make_workdir):
    with nginx_streaming(memory_app, make_workdir(f"memory-{memory_app.name}")) as front:
        yield front


@pytest.fixture(scope="module")
def idle(streaming_front: Front) -> procfs.Usage:
    """The app's usage at rest, after a few small requests of each kind."""
    for _ in range(3):
        assert client.get(streaming_front, streaming_front.url("/hello")).status == 200
        response = client.request(streaming_front, "POST", streaming_front.url("/sha256"), body=BLOCK)
        assert response.status == 200, response
        assert client.digest(streaming_front, streaming_front.url(f"/big?n={len(BLOCK)}")).status == 200
    return procfs.settled(streaming_front.backends[0].pid)


def pattern(n: int) -> Iterator[bytes]:
    """n bytes of the /big pattern, a block at a time."""
    view = memoryview(BLOCK)
    while n > 0:
        chunk = view[: min(n, len(BLOCK))]
        n -= len(chunk)
        yield chunk


class Peak:
    """The app's peak RSS over a `with` block: sampled, and the kernel's high-water mark."""

    def __init__(self, pid: int):
        self.pid = pid
        self.sampler = procfs.Sampler(pid, interval=0.01)

    def __enter__(self) -> Peak:
        self.hwm_reset = procfs.reset_peak(self.pid)
        self.started = time.monotonic()
        self.sampler.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.sampler.__exit__(*exc)
        self.seconds = time.monotonic() - self.started
        self.hwm = procfs.peak_rss(self.pid) if self.hwm_reset else 0
        self.rss = max(self.sampler.peak().rss, self.hwm)


def check(name: str, idle: procfs.Usage, peak: Peak) -> None:
    print(
        f"{name}: {TRANSFER / MIB:.0f} MiB in {peak.seconds:.1f} s; idle RSS {idle.rss / MIB:.1f} MiB, "
        f"peak {peak.rss / MIB:.1f} MiB (+{(peak.rss - idle.rss) / MIB:.1f}; VmHWM {peak.hwm / MIB:.1f} MiB, "
        f"{peak.sampler.count()} samples)"
    )
    assert peak.rss - idle.rss <= PEAK_BOUND, f"{name}: peak RSS {peak.rss / MIB:.1f} MiB, idle {idle.rss / MIB:.1f}"


def test_a_1gib_upload_is_streamed(streaming_front: Front, idle: procfs.Usage) -> None:
    front = streaming_front
    conn = http.client.HTTPConnection(front.host, front.port, timeout=300)
    try:
        with Peak(front.backends[0].pid) as peak:
            headers = {"Content-Length": str(TRANSFER), "Content-Type": "application/octet-stream"}
            conn.request("POST", front.url("/sha256"), body=pattern(TRANSFER), headers=headers)
            response = conn.getresponse()
            body = response.read()
    finally:
        conn.close()
    assert response.status == 200, body[:300]
    assert body == f"{TRANSFER} {contract.big_sha256(TRANSFER)}\n".encode()
    check("upload", idle, peak)


def test_a_1gib_download_is_streamed(streaming_front: Front, idle: procfs.Usage) -> None:
    front = streaming_front
    conn = http.client.HTTPConnection(front.host, front.port, timeout=300)
    sha, length = hashlib.sha256(), 0
    try:
        with Peak(front.backends[0].pid) as peak:
            conn.request("GET", front.url(f"/big?n={TRANSFER}"))
            response = conn.getresponse()
            while chunk := response.read(client.CHUNK):
                sha.update(chunk)
                length += len(chunk)
    finally:
        conn.close()
    assert response.status == 200
    assert (length, sha.hexdigest()) == (TRANSFER, contract.big_sha256(TRANSFER))
    check("download", idle, peak)

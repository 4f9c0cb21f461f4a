#!/usr/bin/env python3
"""Reproduces the figures of the trust issue: each hostile case of fcgi-core/tests/trust.rs,
measured against one build of the Rust echo example (or any app that speaks the echo contract),
so that the old code and the new can be compared side by side.

Not part of the test suite: it asserts nothing, it measures and prints. Usage:

    cargo build --release -p fcgi-core --example echo
    python3 bench/trust_figures.py --label new -- target/release/examples/echo
    python3 bench/trust_figures.py --label old --cases 1,9 -- /path/to/old/echo
    python3 bench/trust_figures.py --table old.json new.json

The app command gets `--bind unix:PATH` and the case's flags appended. Each case prints one
JSON line; `--json FILE` also writes them all, and `--table` prints two such files side by side.
The slow cases wait up to a cap (`--cap`, 70 s by default; 95 s for the stops and the slots,
60 s for the multiplexed bodies).
"""

from __future__ import annotations

import argparse
import json
import os
import select
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "python"))
from fcgi_client import (  # noqa: E402
    BEGIN_REQUEST,
    END_REQUEST,
    PARAMS,
    RESPONDER,
    STDIN,
    STDOUT,
    default_params,
    pairs,
    record,
    request_records,
    stream,
)

OVERLOADED = 2


class App:
    """One app process on a fresh Unix socket."""

    def __init__(self, command: list[str], flags: list[str]):
        self.dir = tempfile.mkdtemp(prefix="trust-figures-")
        self.path = os.path.join(self.dir, "app.sock")
        self.log = open(os.path.join(self.dir, "stderr"), "w+b")
        self.proc = subprocess.Popen([*command, "--bind", f"unix:{self.path}", *flags], stderr=self.log)
        deadline = time.monotonic() + 30
        while not self.answers():
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError(f"the app did not start: {self.stderr()}")
            time.sleep(0.05)

    def answers(self) -> bool:
        try:
            with self.connect(timeout=2) as sock:
                sock.sendall(request_records(1, default_params("/hello"), b""))
                return read_records(sock, until_end=1, deadline=time.monotonic() + 2)["ended"]
        except OSError:
            return False

    def connect(self, timeout: float | None = 10) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX)
        sock.settimeout(timeout)
        sock.connect(self.path)
        return sock

    def status(self) -> dict[str, int]:
        fields = {}
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                name, _, value = line.partition(":")
                if name in ("VmRSS", "Threads"):
                    fields[name] = int(value.split()[0])
        fields["fds"] = len(os.listdir(f"/proc/{self.proc.pid}/fd"))
        return fields

    def stop_timed(self, cap: float) -> float | None:
        """Sends SIGTERM; the seconds until the process ends, or None past `cap`."""
        start = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=cap)
            return time.monotonic() - start
        except subprocess.TimeoutExpired:
            return None

    def stderr(self) -> str:
        self.log.flush()
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-2000:]

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def read_records(sock: socket.socket, until_end: int | None, deadline: float, ends: int = 0) -> dict:
    """Reads records until END_REQUEST for `until_end`, `ends` END_REQUESTs in all (if not 0),
    EOF or the deadline: the STDOUT bytes per id, the END_REQUESTs, and how the reading stopped."""
    buf, out = b"", {"stdout": {}, "ends": {}, "ended": False, "eof": False, "timed_out": False}
    while True:
        while len(buf) >= 8:
            _, kind, rid, length, padding = struct.unpack(">BBHHBx", buf[:8])
            if len(buf) < 8 + length + padding:
                break
            content, buf = buf[8 : 8 + length], buf[8 + length + padding :]
            if kind == STDOUT:
                out["stdout"][rid] = out["stdout"].get(rid, b"") + content
            elif kind == END_REQUEST:
                out["ends"][rid] = struct.unpack(">IB3x", content)
                if until_end == rid or len(out["ends"]) == ends:
                    out["ended"] = True
                    return out
        left = deadline - time.monotonic()
        if left <= 0:
            out["timed_out"] = True
            return out
        sock.settimeout(left)
        try:
            chunk = sock.recv(1 << 16)
        except socket.timeout:
            out["timed_out"] = True
            return out
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            out["eof"] = True
            return out
        buf += chunk


def body_of(stdout: bytes) -> bytes:
    return stdout.partition(b"\r\n\r\n")[2]


def status_of(stdout: bytes) -> int | None:
    """The CGI Status of a response (200 without one), None with no head."""
    head, sep, _ = stdout.partition(b"\r\n\r\n")
    if not sep:
        return None
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"status:"):
            return int(line.split()[1])
    return 200


def get(app: App, uri: str = "/hello", timeout: float = 10) -> dict:
    with app.connect(timeout=timeout) as sock:
        sock.sendall(request_records(1, default_params(uri), b""))
        return read_records(sock, until_end=1, deadline=time.monotonic() + timeout)


def case_1(command, cap, runs=5):
    """A 4 MiB POST to /echo?prefix=70000: body bytes received back vs sent. The loss on the old
    code depends on how far the body is ahead of the handler, so the case runs `runs` times."""
    app = App(command, [])
    try:
        prefix, received = 70_000, []
        for _ in range(runs):
            body = os.urandom(4 << 20)
            params = default_params(f"/echo?prefix={prefix}", "POST", body)
            with app.connect(timeout=cap) as sock:
                sender = threading.Thread(target=_send_quietly, args=(sock, request_records(1, params, body)))
                sender.start()
                got = read_records(sock, until_end=1, deadline=time.monotonic() + cap)
                sender.join()
            echoed = body_of(got["stdout"].get(1, b""))[prefix:]
            received.append(len(echoed) if echoed == body[: len(echoed)] else -len(echoed))
        whole = sum(1 for n in received if n == 4 << 20)
        short = sorted({abs(n) for n in received if n != 4 << 20})
        return {
            "sent": 4 << 20,
            "received_per_run": received,
            "figure": f"{whole} of {runs} runs whole (4,194,304 bytes)"
            + ("; the others got " + ", ".join(f"{n:,}" for n in short) if short else ""),
        }
    finally:
        app.close()


def case_2(command, cap, seconds=10.0):
    """RSS after 10 s of 64 KiB bursts of 8-byte type-42 management records during /slow."""
    app = App(command, [])
    try:
        time.sleep(0.5)
        baseline = app.status()["VmRSS"]
        sock = app.connect(timeout=None)
        received = [0]

        def count():
            while True:
                try:
                    chunk = sock.recv(1 << 16)
                except OSError:
                    return
                if not chunk:
                    return
                received[0] += len(chunk)

        counter = threading.Thread(target=count, daemon=True)
        counter.start()
        uri = "/slow?ms=12000"
        head = record(BEGIN_REQUEST, 1, struct.pack(">HB5x", RESPONDER, 0)) + stream(
            PARAMS, 1, pairs(default_params(uri))
        )
        sock.sendall(head)
        burst = record(42, 0) * ((64 << 10) // 8)
        sent, peak, pending = 0, baseline, memoryview(b"")
        start = time.monotonic()
        next_sample = start
        while time.monotonic() - start < seconds:
            if not pending:
                pending = memoryview(burst)
            _, writable, _ = select.select([], [sock], [], 0.1)
            if writable:
                try:
                    n = sock.send(pending, socket.MSG_DONTWAIT)
                except BlockingIOError:
                    n = 0
                except OSError:
                    break
                sent += n
                pending = pending[n:]
            if time.monotonic() >= next_sample:
                peak = max(peak, app.status()["VmRSS"])
                next_sample += 0.25
        at_end = app.status()["VmRSS"]
        peak = max(peak, at_end)
        sock.settimeout(cap)
        try:
            sock.sendall(bytes(pending) + record(STDIN, 1))
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        counter.join(timeout=cap)
        sock.close()
        return {
            "sent_mib": round(sent / (1 << 20), 1),
            "replies_mib": round(received[0] / (1 << 20), 1),
            "rss_kib_before": baseline,
            "rss_kib_peak": peak,
            "rss_kib_after_10s": at_end,
            "figure": f"RSS {baseline // 1024} MiB -> {at_end // 1024} MiB after 10 s (peak {peak // 1024} MiB); "
            f"sent {sent / (1 << 20):.0f} MiB, got {received[0] / (1 << 20):.0f} MiB of replies",
        }
    finally:
        app.close()


def stalled_head(app: App) -> socket.socket:
    """BEGIN_REQUEST and 10 of the 100 bytes a PARAMS header promises, then silence."""
    sock = app.connect()
    out = record(BEGIN_REQUEST, 1, struct.pack(">HB5x", RESPONDER, 0))
    out += struct.pack(">BBHHBx", 1, PARAMS, 1, 100, 4) + bytes([11, 3]) + b"REQUEST_U"
    sock.sendall(out)
    return sock


def case_3(command, cap):
    """50 stalled request heads, then a fresh /hello: seconds until it is answered."""
    result = {}
    for workers in ("2", "1"):
        app = App(command, ["--workers", workers])
        try:
            stalled = [stalled_head(app) for _ in range(50)]
            time.sleep(0.2)
            start = time.monotonic()
            got = get(app, timeout=cap)
            waited = time.monotonic() - start
            result[f"workers_{workers}"] = round(waited, 4) if got["ended"] else None
            for sock in stalled:
                sock.close()
        finally:
            app.close()
    result["figure"] = ", ".join(
        f"workers {w}: "
        + (
            f"{result[f'workers_{w}'] * 1000:.1f} ms"
            if result[f"workers_{w}"] is not None
            else f"not answered in {cap:.0f} s"
        )
        for w in ("2", "1")
    )
    return result


def wait_closed(sock: socket.socket, until: float) -> bool:
    """Whether the app closes `sock` (EOF or reset) before `until`."""
    while (left := until - time.monotonic()) > 0:
        readable, _, _ = select.select([sock], [], [], left)
        if readable:
            try:
                if sock.recv(4096, socket.MSG_DONTWAIT) == b"":
                    return True
            except BlockingIOError:
                continue
            except OSError:
                return True
    return False


def case_4(command, cap):
    """A request head trickled 1 byte every 2 s: closed, and after how long."""
    app = App(command, [])
    try:
        params = default_params("/hello")
        params["PAD"] = b"x" * 200
        head = request_records(1, params, b"")
        sock = app.connect()
        start = time.monotonic()
        closed_after = None
        for i, byte in enumerate(head):
            try:
                sock.send(bytes([byte]))
            except OSError:
                closed_after = time.monotonic() - start
                break
            if wait_closed(sock, start + 2 * (i + 1)) or time.monotonic() - start > cap:
                if time.monotonic() - start <= cap:
                    closed_after = time.monotonic() - start
                break
        sock.close()
        return {
            "closed_after": round(closed_after, 1) if closed_after else None,
            "figure": f"closed after {closed_after:.1f} s" if closed_after else f"not closed after {cap:.0f} s",
        }
    finally:
        app.close()


def case_5(command, cap):
    """SIGTERM with 100 silent connections: seconds until the process ends."""
    app = App(command, [])
    try:
        silent = [app.connect() for _ in range(100)]
        time.sleep(0.3)
        took = app.stop_timed(cap)
        for sock in silent:
            sock.close()
        return {
            "stop_seconds": round(took, 3) if took is not None else None,
            "figure": f"ended in {took:.2f} s" if took is not None else f"not ended after {cap:.0f} s",
        }
    finally:
        app.close()


def case_6(command, cap):
    """100 silent connections at --max-connections 100: a real request's answer, and when the
    slots come back (a /hello answered 200)."""
    app = App(command, ["--max-connections", "100"])
    try:
        start = time.monotonic()
        silent = [app.connect() for _ in range(100)]
        time.sleep(0.5)
        first = get(app, timeout=5)
        end = first["ends"].get(1)
        if first["ended"] and end[1] == OVERLOADED:
            first_answer = "OVERLOADED"
        elif first["ended"]:
            first_answer = f"answered ({body_of(first['stdout'].get(1, b''))[:20]!r})"
        else:
            first_answer = "closed" if first["eof"] else "no answer in 5 s"
        back = None
        while time.monotonic() - start < cap:
            got = get(app, timeout=5)
            if got["ended"] and got["ends"][1][1] == 0 and body_of(got["stdout"].get(1, b"")) == b"Hello, world!":
                back = time.monotonic() - start
                break
            time.sleep(0.5)
        for sock in silent:
            sock.close()
        return {
            "first_request": first_answer,
            "slots_back_after": round(back, 1) if back is not None else None,
            "figure": f"{first_answer}; slots back after "
            + (f"{back:.1f} s" if back is not None else f"> {cap:.0f} s (not back)"),
        }
    finally:
        app.close()


def case_7(command, cap):
    """--workers 1 --multiplex 2, request 2's 3 MiB body sent before request 1's 500 KB body."""
    app = App(command, ["--workers", "1", "--multiplex", "2"])
    try:
        bodies = {1: os.urandom(500_000), 2: os.urandom(3 << 20)}
        out = b""
        for rid in (1, 2):
            wire = record(BEGIN_REQUEST, rid, struct.pack(">HB5x", RESPONDER, 1))
            out += wire + stream(PARAMS, rid, pairs(default_params("/echo", "POST", bodies[rid])))
        for rid in (2, 1):
            out += stream(STDIN, rid, bodies[rid])
        sock = app.connect(timeout=None)
        sender = threading.Thread(target=lambda: _send_quietly(sock, out), daemon=True)
        start = time.monotonic()
        sender.start()
        got = {"stdout": {}, "ends": {}}
        deadline = start + cap
        while len(got["ends"]) < 2 and time.monotonic() < deadline:
            part = read_records(sock, until_end=None, deadline=deadline, ends=2 - len(got["ends"]))
            for rid, data in part["stdout"].items():
                got["stdout"][rid] = got["stdout"].get(rid, b"") + data
            got["ends"].update(part["ends"])
            if part["eof"] or part["timed_out"]:
                break
        took = time.monotonic() - start
        sock.close()
        ok = {rid: body_of(got["stdout"].get(rid, b"")) == bodies[rid] for rid in (1, 2)}
        statuses = {rid: status_of(got["stdout"].get(rid, b"")) for rid in (1, 2)}
        ended = len(got["ends"]) == 2
        return {
            "ended": ended,
            "seconds": round(took, 3) if ended else None,
            "echoed_whole": ok,
            "statuses": statuses,
            "figure": (
                f"both ended in {took:.2f} s (request 1: {statuses[1]}, echo whole: {ok[1]}; "
                f"request 2: {statuses[2]}, echo whole: {ok[2]})"
                if ended
                else f"not ended after {cap:.0f} s (ended: {sorted(got['ends'])})"
            ),
        }
    finally:
        app.close()


def _send_quietly(sock, data):
    try:
        sock.sendall(data)
    except OSError:
        pass


def case_8(command, cap):
    """500 idle multiplexed connections, each after one kept request: threads, fds, stop time."""
    app = App(command, ["--multiplex", "2"])
    try:
        idle = []
        for _ in range(500):
            sock = app.connect()
            sock.sendall(request_records(1, default_params("/hello"), b"", keep_conn=True))
            got = read_records(sock, until_end=1, deadline=time.monotonic() + 10)
            assert got["ended"], "a kept request was not answered"
            idle.append(sock)
        time.sleep(1)
        status = app.status()
        took = app.stop_timed(cap)
        for sock in idle:
            sock.close()
        return {
            "threads": status["Threads"],
            "fds": status["fds"],
            "stop_seconds": round(took, 3) if took is not None else None,
            "figure": f"{status['Threads']} threads, {status['fds']} fds; SIGTERM: "
            + (f"ended in {took:.2f} s" if took is not None else f"not ended after {cap:.0f} s"),
        }
    finally:
        app.close()


def case_9(command, cap):
    """/fail?after=100000: END_REQUEST after a cut response, or a close without it."""
    app = App(command, [])
    try:
        with app.connect() as sock:
            sock.sendall(request_records(1, default_params("/fail?after=100000"), b"", keep_conn=True))
            got = read_records(sock, until_end=None, deadline=time.monotonic() + 15)
        body = body_of(got["stdout"].get(1, b""))
        end = got["ends"].get(1)
        how = f"END_REQUEST (app_status {end[0]}, protocol_status {end[1]})" if end else "no END_REQUEST"
        then = "then closed" if got["eof"] else "connection left open (15 s)"
        return {
            "body_bytes": len(body),
            "end_request": end,
            "closed": got["eof"],
            "figure": f"{len(body):,} body bytes, {how}, {then}",
        }
    finally:
        app.close()


CASES = {
    "1": ("4 MiB POST /echo?prefix=70000: body bytes back", case_1, None),
    "2": ("64 KiB bursts of type-42 records for 10 s during /slow: RSS", case_2, None),
    "3": ("50 stalled heads: seconds until a fresh /hello answers", case_3, None),
    "4": ("head trickled 1 byte / 2 s: closed?", case_4, None),
    "5": ("SIGTERM with 100 silent connections", case_5, 95.0),
    "6": ("100 silent connections, --max-connections 100", case_6, 95.0),
    "7": ("--workers 1 --multiplex 2, 3 MiB body 2 before 500 KB body 1", case_7, 60.0),
    "8": ("500 idle multiplexed connections: threads, fds, SIGTERM", case_8, 95.0),
    "9": ("/fail?after=100000: cut response", case_9, None),
}


def print_table(files: list[str]):
    runs = []
    for name in files:
        with open(name) as f:
            runs.append(json.load(f))
    labels = [run["label"] for run in runs]
    print("| # | case | " + " | ".join(labels) + " |")
    print("|---|---|" + "---|" * len(labels))
    for key, (title, _, _) in CASES.items():
        cells = [run["cases"].get(key, {}).get("figure", "not run") for run in runs]
        print(f"| {key} | {title} | " + " | ".join(cells) + " |")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--label", default="app")
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--cap", type=float, default=70.0)
    parser.add_argument("--json")
    parser.add_argument("--table", nargs="+", metavar="JSON")
    parser.add_argument("command", nargs="*")
    args = parser.parse_args()
    if args.table:
        print_table(args.table)
        return
    results = {"label": args.label, "command": args.command, "cases": {}}
    for key in args.cases.split(","):
        title, run, cap = CASES[key]
        started = time.monotonic()
        try:
            result = run(args.command, cap or args.cap)
        except Exception as e:  # a case that breaks is a figure too
            result = {"figure": f"error: {e!r}"}
        result["wall_seconds"] = round(time.monotonic() - started, 1)
        results["cases"][key] = result
        print(json.dumps({"label": args.label, "case": key, "title": title, **result}, default=str), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1, default=str)


if __name__ == "__main__":
    main()

"""``make bench-instructions``: user-space instructions per request, counted by callgrind.

``python3 bench/instructions.py [--requests N] [--runs R] [--only TARGET,...] [--workloads hello,django]``

Each target runs under ``valgrind --tool=callgrind`` twice: once serving N requests, once 3N,
from a raw FastCGI client in this process (no web server), a connection per request as nginx
makes them without ``fastcgi_keep_conn``, the next requests already waiting in the backlog as
under load. The difference of the two totals over 2N is what one
request costs in user-space instructions: start-up, the first requests' warm-up (imports, caches,
Python's specializing interpreter) and exit are the same in both runs and cancel. Instruction
counts do not depend on what else the machine does, so unlike CPU time they compare across runs
and days; ``--runs 2`` (the default) measures everything twice and prints both, with the spread.
The kernel's share (syscalls, the socket) is not counted: callgrind sees user space only.

Every target serves with one thread (``--workers 1``, ``--threads 1``...): instructions measure
the request path, and with one client sending one request at a time extra threads only add
hand-offs whose count depends on scheduling. See bench/README.md for the method.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
RESULTS = BENCH / "results"
DJANGO_SITE = ROOT / "examples" / "django"
PYTHON = sys.executable

sys.path.insert(0, str(ROOT / "tests" / "python"))
sys.path.insert(0, str(BENCH))
from fcgi_client import read_response, request_records  # noqa: E402
from svgchart import Bar, Panel, commit_label, grid_svg  # noqa: E402

OURS = ("python", "python-4t", "python-2p", "capi", "rust", "python-asgi")
PEERS = ("uwsgi", "libfcgi", "flup", "fcgisgi")
# The Django page's own cost: its WSGIHandler called in a loop, no server (bench/django_limit.py).
LIMIT = "limit"
# Requests sent ahead, each on its own connection, while the app serves the first.
AHEAD = 16
WORKLOADS = {
    "hello": ("/hello", b"Hello, world!"),
    "django": ("/", b"Hello from Django"),
    "asgi": ("/hello", b"Hello, world!"),
}

# What nginx sends for `GET /hello` from wrk with bench/run.py's fastcgi_params: the same names,
# values as nginx fills them, and the one request header wrk sends.
NGINX_PARAMS = {
    "QUERY_STRING": "",
    "REQUEST_METHOD": "GET",
    "CONTENT_TYPE": "",
    "CONTENT_LENGTH": "",
    "SCRIPT_NAME": "",
    "PATH_INFO": "{path}",
    "REQUEST_URI": "{path}",
    "DOCUMENT_URI": "{path}",
    "DOCUMENT_ROOT": "/usr/share/nginx/html",
    "SERVER_PROTOCOL": "HTTP/1.1",
    "REQUEST_SCHEME": "http",
    "GATEWAY_INTERFACE": "CGI/1.1",
    "SERVER_SOFTWARE": "nginx/1.22.1",
    "REMOTE_ADDR": "127.0.0.1",
    "REMOTE_PORT": "51234",
    "SERVER_ADDR": "127.0.0.1",
    "SERVER_PORT": "8080",
    "SERVER_NAME": "",
    "REDIRECT_STATUS": "200",
    "HTTP_HOST": "127.0.0.1:8080",
}


# The environment of every target: the same whoever runs the bench. Its size moves the stack, and
# with it the alignment of buffers that memcpy and friends take in more or fewer instructions:
# the counts moved by up to 0.4% between a run from make and one from a shell. Python: the same
# hash seed in every run (dict and set layouts, so the same work), and no .pyc written by the
# first run that the second would only read.
CLEAN_ENV = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "LANG": "C.UTF-8",
    "PYTHONHASHSEED": "0",
    "PYTHONDONTWRITEBYTECODE": "1",
}


# Where the Django page's Pythons find the sitecustomize that turns the garbage collector off
# (see it for why).
NO_GC = ROOT / "bench" / "apps" / "nogc"


def environment(case: Case) -> dict[str, str]:
    """CLEAN_ENV, and for the Django page the collector turned off."""
    return {**CLEAN_ENV, "PYTHONPATH": str(NO_GC)} if case.workload == "django" else CLEAN_ENV


@dataclass
class Case:
    """One target serving one workload: its command with ``{valgrind}`` where valgrind's own
    arguments go (before the program it counts) and ``{sock}`` for the socket."""

    target: str
    kind: str  # "ours" or "peer"
    workload: str
    argv: list[str]
    cwd: Path = ROOT


def binary(*parts: str) -> str:
    return str(ROOT.joinpath("target", *parts))


def script(name: str) -> str | None:
    """A console script installed beside this Python or its base interpreter (uwsgi), else on
    PATH (where pyenv's shim would put a shell script between valgrind and the program)."""
    for folder in (Path(PYTHON).parent, Path(sys.base_prefix) / "bin"):
        if (folder / name).exists():
            return str(folder / name)
    return shutil.which(name)


def make_cases(workloads: list[str], only: set[str] | None) -> list[Case]:
    one = ["--workers", "1"]
    launch, bind = ["{valgrind}", PYTHON, "-m", "fcgi_wsgi"], ["--bind", "unix:{sock}"]
    fcgi_wsgi = [*launch, *one, "--processes", "1", *bind]
    flup = ["{valgrind}", PYTHON, str(BENCH / "apps" / "flup_server.py")]
    fcgisgi = ["{valgrind}", PYTHON, str(BENCH / "apps" / "fcgisgi_server.py")]
    uwsgi = ["{valgrind}", script("uwsgi") or "uwsgi", "--fastcgi-socket", "{sock}", "--processes", "1"]
    uwsgi += ["--disable-logging", "--die-on-term", "--need-app"]
    apps = BENCH / "apps"
    hello = [
        Case("python", "ours", "hello", [*fcgi_wsgi, "--chdir", str(apps), "bench_app:app"]),
        Case("capi", "ours", "hello", ["{valgrind}", binary("c-examples", "hello"), "--bind", "unix:{sock}"]),
        Case(
            "rust",
            "ours",
            "hello",
            ["{valgrind}", binary("release", "examples", "echo"), "--bind", "unix:{sock}"] + one,
        ),
        Case("uwsgi", "peer", "hello", [*uwsgi, "--chdir", str(apps), "--module", "bench_app:app"]),
        Case(
            "libfcgi",
            "peer",
            "hello",
            [shutil.which("spawn-fcgi") or "spawn-fcgi", "-n", "-s", "{sock}", "-M", "0600", "--", "{valgrind}"]
            + [binary("bench", "libfcgi_app"), "1"],
        ),
        Case("flup", "peer", "hello", [*flup, "bench_app:app", "{sock}", "1"], cwd=apps),
    ]
    site = ["--chdir", str(DJANGO_SITE), "demo_site.wsgi:application"]
    django = [
        Case(LIMIT, LIMIT, "django", ["{valgrind}", PYTHON, str(BENCH / "django_limit.py"), "{n}"]),
        Case("python", "ours", "django", [*fcgi_wsgi, *site]),
        # Our overhead when threads share the GIL, and across two processes (#19 item 4).
        Case("python-4t", "ours", "django", [*launch, *bind, "--workers", "4", "--processes", "1", *site]),
        Case("python-2p", "ours", "django", [*launch, *bind, "--workers", "1", "--processes", "2", *site]),
        Case(
            "uwsgi", "peer", "django", [*uwsgi, "--chdir", str(DJANGO_SITE), "--module", "demo_site.wsgi:application"]
        ),
        Case("flup", "peer", "django", [*flup, "demo_site.wsgi:application", "{sock}", "1"], cwd=DJANGO_SITE),
    ]
    asgi = [
        Case(
            "python-asgi",
            "ours",
            "asgi",
            ["{valgrind}", PYTHON, "-m", "fcgi_wsgi", "--max-concurrency", "1", "--bind", "unix:{sock}"]
            + ["--interface", "asgi", "--chdir", str(apps), "bench_asgi:app"],
        ),
        Case("fcgisgi", "peer", "asgi", [*fcgisgi, "bench_asgi:app", "{sock}"], cwd=apps),
    ]
    cases = (hello if "hello" in workloads else []) + (django if "django" in workloads else [])
    cases += asgi if "asgi" in workloads else []
    cases = [c for c in cases if only is None or c.target in only]
    for case in cases:
        for arg in case.argv:
            if arg.startswith(str(ROOT / "target")) and not Path(arg).exists():
                sys.exit(f"bench-instructions: {arg} is missing; `make bench-instructions` builds it")
    return cases


# ---------------------------------------------------------------------------------------------
# Counting


def callgrind_total(text: str) -> int:
    """The instructions (Ir) a callgrind output file counts: its ``totals:`` line, else its
    ``summary:`` line (the first event is Ir, the default)."""
    found = None
    for line in text.splitlines():
        if line.startswith("totals:"):
            return int(line.split()[1])
        if line.startswith("summary:") and found is None:
            found = int(line.split()[1])
    if found is None:
        raise ValueError("no totals: or summary: line in the callgrind output")
    return found


def per_request(low: int, high: int, n_low: int, n_high: int) -> float:
    """Instructions per request from two runs of the same program, n_low and n_high requests:
    what both runs share (start-up, warm-up, exit) cancels in the difference."""
    if n_high <= n_low:
        raise ValueError("the second run must serve more requests than the first")
    return (high - low) / (n_high - n_low)


def spread(values: list[float]) -> float | None:
    """How far apart the runs are: (max - min) / min, 0.01 for 1%."""
    values = [v for v in values if v is not None]
    return (max(values) - min(values)) / min(values) if len(values) > 1 and min(values) > 0 else None


class Failed(Exception):
    """A target that could not be counted; the message says why and lands in the table."""


def connect(path: Path, proc: subprocess.Popen, deadline: float) -> socket.socket:
    """A connection to the app, waiting for it to listen: no probe connection of its own, so
    every run makes exactly the connections of its requests."""
    while True:
        sock = socket.socket(socket.AF_UNIX)
        try:
            sock.connect(str(path))
            return sock
        except OSError:
            sock.close()
            if proc.poll() is not None:
                raise Failed(f"exited with status {proc.returncode} before it listened") from None
            if time.monotonic() > deadline:
                raise Failed("did not listen within the start-up timeout") from None
            time.sleep(0.1)


def stop(proc: subprocess.Popen, sock: Path, timeout: float = 180) -> None:
    """SIGTERM, on which callgrind writes its counts as the program exits. A program blocked in
    accept() under valgrind sometimes takes the signal only when accept() returns (libfcgi, which
    has no handler of its own): after 5 s, one connection closed at once wakes it."""
    os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while True:
        try:
            proc.wait(5)
            return
        except subprocess.TimeoutExpired:
            if time.monotonic() > deadline:
                raise Failed(f"did not exit within {timeout:g} s of SIGTERM") from None
        with socket.socket(socket.AF_UNIX) as poke:
            try:
                poke.connect(str(sock))
            except OSError:
                pass


def serve(case: Case, n: int, work: Path, startup_timeout: float) -> int:
    """Runs the case under callgrind for n requests; its total instructions."""
    out = work / f"{case.target}-{case.workload}-{n}"
    out.mkdir()
    sock = out / "app.sock"
    valgrind = [
        shutil.which("valgrind") or "valgrind",
        "--tool=callgrind",
        f"--callgrind-out-file={out}/callgrind.out.%p",
    ]
    if case.kind == LIMIT:
        return count_limit(case, n, out, valgrind)
    argv: list[str] = []
    for arg in case.argv:
        argv += valgrind if arg == "{valgrind}" else [arg.replace("{sock}", str(sock))]
    env = environment(case)
    path, expected = WORKLOADS[case.workload]
    params = {k: v.replace("{path}", path) for k, v in NGINX_PARAMS.items()}
    wire = request_records(1, params, b"")
    log = out / "log.txt"
    with open(log, "wb") as log_file:
        proc = subprocess.Popen(
            argv,
            cwd=case.cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=log_file,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + startup_timeout
        waiting: deque[socket.socket] = deque()
        try:
            for i in range(n):
                # The next requests wait in the backlog, sent whole, before this one's answer is
                # read: the app finds its next connection ready, as under load, and never waits
                # in accept or read (a wait whose cost depends on timing, not on the request).
                while len(waiting) < AHEAD and i + len(waiting) < n:
                    conn = connect(sock, proc, deadline)
                    waiting.append(conn)
                    conn.settimeout(120)
                    conn.sendall(wire)
                conn = waiting.popleft()
                with conn:
                    response = read_response(conn)
                    if response.status != 200 or expected not in response.body:
                        raise Failed(f"request {i + 1}: status {response.status}, {response.body[:60]!r}")
                    # The app closes the connection (no FCGI_KEEP_CONN); wait for it, as nginx does.
                    while conn.recv(4096):
                        pass
        finally:
            for conn in waiting:
                conn.close()
        stop(proc, sock)
    except (Failed, OSError, EOFError) as e:
        tail = log.read_text(errors="replace")[-600:].strip()
        raise Failed(f"{e}" + (f"; its log ends: {tail}" if tail else "")) from None
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    files = sorted(out.glob("callgrind.out.*"))
    if not files:
        raise Failed(f"callgrind wrote no output; its log ends: {log.read_text(errors='replace')[-600:]}")
    return sum(callgrind_total(f.read_text(errors="replace")) for f in files)


def count_limit(case: Case, n: int, out: Path, valgrind: list[str]) -> int:
    """Runs the in-process limit (no server: the app called n times in a loop) to its end."""
    argv: list[str] = []
    for arg in case.argv:
        argv += valgrind if arg == "{valgrind}" else [arg.replace("{n}", str(n))]
    log = out / "log.txt"
    with open(log, "wb") as log_file:
        done = subprocess.run(argv, cwd=case.cwd, env=environment(case), stdout=log_file, stderr=log_file, timeout=1800)
    files = sorted(out.glob("callgrind.out.*"))
    if done.returncode != 0 or not files:
        raise Failed(f"exited with status {done.returncode}; its log ends: {log.read_text(errors='replace')[-600:]}")
    return sum(callgrind_total(f.read_text(errors="replace")) for f in files)


def count(case: Case, n: int, work: Path, startup_timeout: float) -> dict:
    started = time.monotonic()
    low = serve(case, n, work, startup_timeout)
    high = serve(case, 3 * n, work, startup_timeout)
    return {
        "low": low,
        "high": high,
        "per_request": per_request(low, high, n, 3 * n),
        "seconds": time.monotonic() - started,
    }


# ---------------------------------------------------------------------------------------------
# Reporting


def mean(values: list[float | None]) -> float | None:
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


def render(rows: list[dict], meta: dict) -> str:
    runs = meta["runs"]
    lines = [
        f"fcgi bench-instructions: user-space instructions per request under callgrind, "
        f"(I(3N) - I(N)) / 2N with N={meta['requests']}; {runs} run(s); {meta['started']}",
        f"ours: {meta['commit']}",
        "a connection per request, one thread in every target; ratios of the mean: below 1 is fewer instructions",
        "",
    ]
    head = f"{'workload':<10}{'target':<20}" + "".join(f"{'run ' + str(i + 1):>12}" for i in range(runs))
    head += f"{'spread':>9}{'mean':>12}"
    lines += [head, "-" * len(head)]
    for workload in WORKLOADS:
        group = [r for r in rows if r["workload"] == workload]
        if not group:
            continue
        for row in group:
            cells = "".join(f"{v:>12,.0f}" if v is not None else f"{'-':>12}" for v in row["runs"])
            s = row["spread"]
            m = row["mean"]
            lines.append(
                f"{workload:<10}{row['target']:<20}{cells}{f'{100 * s:.2f}%' if s is not None else '-':>9}"
                f"{f'{m:,.0f}' if m is not None else '-':>12}"
            )
        for row in group:
            for peer, ratio in row.get("ratios", {}).items():
                if ratio is not None:
                    label = f"{row['target']} / {peer}"
                    # Over the limit, what matters is the server's share: the overhead.
                    figure = f"{100 * (ratio - 1):>+10.1f}%" if peer == LIMIT else f"{ratio:>11.2f}x"
                    lines.append(f"{'':<10}{label:<20}{'':>{12 * runs + 9}}{figure}")
        lines.append("")
    failed = [r for r in rows if r.get("error")]
    for row in failed:
        lines.append(f"{row['target']} {row['workload']}: not counted: {row['error']}")
    return "\n".join(lines).rstrip() + "\n"


def chart(rows: list[dict], meta: dict) -> str:
    panels = []
    for workload in WORKLOADS:
        group = [r for r in rows if r["workload"] == workload]
        if not group:
            continue
        bars = []
        for row in group:
            m = row["mean"]
            text = f"{m / 1000:,.1f}k" if m is not None else "not counted"
            bars.append(Bar(row["target"], m, row["kind"], text))
        panels.append(Panel(f"{workload}: instructions per request", bars, "fewer is better"))
    subtitle = [
        f"callgrind, (I(3N) - I(N)) / 2N, N={meta['requests']}, a connection per request, one thread; "
        f"mean of {meta['runs']} run(s)",
        f"{meta['started'][:10]}, {meta['machine']}; ours: {commit_label(meta['commit'])}",
    ]
    return grid_svg("FastCGI servers: user-space instructions per request", subtitle, [panels])


def commit() -> str:
    def git(*args: str) -> str:
        out = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True)
        return out.stdout.strip()

    head = git("log", "-1", "--format=%h %s") or "?"
    return head + (" (with uncommitted changes)" if git("status", "--porcelain", "--untracked-files=no") else "")


def machine() -> str:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} CPUs{', ' + model if model else ''}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=200, help="N: the runs serve N, then 3N requests")
    parser.add_argument("--runs", type=int, default=2, help="how many times to count everything (stability)")
    parser.add_argument("--only", help=f"comma-separated targets: {', '.join(OURS + PEERS)}")
    parser.add_argument(
        "--workloads", default="hello,django,asgi", help="comma-separated: hello, django, asgi (an ASGI hello)"
    )
    parser.add_argument("--startup-timeout", type=float, default=300, help="seconds a target may take to listen")
    parser.add_argument("--no-write", action="store_true", help="print only; nothing into bench/results/")
    parser.add_argument("--keep", action="store_true", help="keep callgrind's files (for callgrind_annotate)")
    parser.add_argument("--chart", type=Path, metavar="JSON", help="only draw the chart of a results file, beside it")
    args = parser.parse_args(argv)
    if args.chart:
        saved = json.loads(args.chart.read_text())
        svg = args.chart.with_suffix(".svg")
        svg.write_text(chart(saved["rows"], saved["meta"]))
        print(f"bench-instructions: wrote {svg}")
        return 0
    if not shutil.which("valgrind"):
        sys.exit("bench-instructions: valgrind is not installed; `make bench-instructions` installs it")
    only = set(args.only.split(",")) if args.only else None
    cases = make_cases(args.workloads.split(","), only)
    meta = {
        "started": datetime.datetime.now().isoformat(timespec="seconds"),
        "requests": args.requests,
        "runs": args.runs,
        "commit": commit(),
        "machine": machine(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "valgrind": subprocess.run(["valgrind", "--version"], capture_output=True, text=True).stdout.strip(),
    }
    print(f"bench-instructions: {len(cases)} targets x {args.runs} run(s), N={args.requests} then {3 * args.requests}")
    results: dict[tuple[str, str], list[dict]] = {}
    errors: dict[tuple[str, str], str] = {}
    work = Path(tempfile.mkdtemp(prefix="fcgi-instructions-"))
    try:
        for run in range(args.runs):
            run_dir = work / f"run{run + 1}"
            run_dir.mkdir()
            for case in cases:
                key = (case.workload, case.target)
                if key in errors:
                    continue
                try:
                    counted = count(case, args.requests, run_dir, args.startup_timeout)
                except Failed as e:
                    errors[key] = str(e)
                    print(f"  run {run + 1} {case.workload:<7} {case.target:<8} not counted: {e}", flush=True)
                    continue
                results.setdefault(key, []).append(counted)
                print(
                    f"  run {run + 1} {case.workload:<7} {case.target:<8} {counted['per_request']:>12,.0f} "
                    f"instructions/request  ({counted['seconds']:.0f} s)",
                    flush=True,
                )
    finally:
        if not (errors or args.keep):
            shutil.rmtree(work, ignore_errors=True)
    rows = []
    for case in cases:
        key = (case.workload, case.target)
        counted = results.get(key, [])
        values = [c["per_request"] for c in counted]
        rows.append(
            {
                "workload": case.workload,
                "target": case.target,
                "kind": case.kind,
                "runs": values + [None] * (args.runs - len(values)),
                "counts": counted,
                "mean": mean(values) if key not in errors else None,
                "spread": spread(values) if key not in errors else None,
                "error": errors.get(key),
            }
        )
    for row in rows:
        if row["kind"] == "ours" and row["mean"] is not None:
            peers = [r for r in rows if r["workload"] == row["workload"] and r["kind"] in ("peer", LIMIT)]
            row["ratios"] = {p["target"]: row["mean"] / p["mean"] if p["mean"] else None for p in peers}
    text = render(rows, meta)
    print()
    print(text)
    if not args.no_write:
        RESULTS.mkdir(parents=True, exist_ok=True)
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        path = RESULTS / f"instructions-{stamp}.json"
        path.write_text(json.dumps({"meta": meta, "rows": rows, "table": text}, indent=1))
        svg = RESULTS / f"instructions-{stamp}.svg"
        svg.write_text(chart(rows, meta))
        print(f"bench-instructions: wrote {path.relative_to(ROOT)} and {svg.relative_to(ROOT)}")
    if errors or args.keep:
        print(f"bench-instructions: callgrind's files and the targets' logs are in {work}")
    return 1 if any(target in OURS for _, target in errors) else 0


if __name__ == "__main__":
    sys.exit(main())

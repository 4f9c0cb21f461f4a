"""``make bench``: every workload against every target in one run, targets alternating, medians.

``python3 bench/run.py [--rounds N] [--duration S] [--quick] [--only WORKLOAD,...] [--baseline DIR] [--profile S]``

One nginx (one worker) fronts every target on its own loopback port; wrk drives it. Each round
runs every workload against every target, the targets in a rotated order, so that whatever else
the machine does lands on all of them alike; the table quotes the median of the rounds and each
of our figures as a ratio to each peer's. ``--baseline DIR`` adds our targets once more, built
in the tree DIR (another revision: ``make bench BENCH_BASELINE=REV``), as "<target> (base)" in
the same rounds, and each of ours as a ratio to its base. The 1 GiB transfers (peak RSS) run once,
after the rounds; the codec micro-benchmark last. Everything goes to bench/results/bench-DATE.json too.
``--profile S`` instead profiles our Python and C hello targets (or the --only workloads) under load (py-spy, perf).
See bench/README.md for the method.
"""

from __future__ import annotations

import argparse
import datetime
import http.client
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
sys.path.insert(0, str(BENCH))
from svgchart import Bar, Panel, commit_label, grid_svg  # noqa: E402

RESULTS = BENCH / "results"
WRK_SCRIPT = BENCH / "wrk.lua"
DJANGO_SITE = ROOT / "examples" / "django"
PYTHON = sys.executable
MIB = 1 << 20
HELLO = b"Hello, world!"

# Ours (those with a base when there is a baseline), the peers, and nginx's own ceiling.
OURS = ("python", "capi", "rust", "python-asgi")
PEERS = ("flup", "uwsgi", "libfcgi", "nginx", "fcgisgi", "uvicorn")
MULTICORE = "python-2proc"
ACCESS_LOG = "python-accesslog"
BASE = "base"


@dataclass
class Settings:
    rounds: int
    duration: float
    quick: bool
    threads: int
    connections: int
    big_connections: int
    wrk_threads: int
    transfer_bytes: int
    codec_seconds: float
    only: set[str] | None
    baseline: Path | None


@dataclass
class App:
    """One FastCGI application process (with its children) listening on a Unix socket."""

    key: str
    argv: list[str]
    cwd: Path = ROOT
    sock: Path | None = None
    proc: subprocess.Popen | None = None
    log: Path | None = None


@dataclass
class Workload:
    name: str
    title: str
    path: str
    # Which of a target's apps serves it: "hello", "routes" (/big, /echo), "django", "sink".
    uses: str
    keep_conn: bool = False
    body_bytes: int = 0
    big: bool = False
    # Run once with curl, for peak RSS: "upload" to /sink or "download" from /big.
    transfer: str = ""
    # wrk's connections, if not the run's (--connections).
    connections: int = 0


@dataclass(frozen=True)
class Build:
    """One tree's build of ours: this one, or the baseline's (``--baseline DIR``)."""

    root: Path
    python: str
    label: str = ""  # "" for this tree, BASE for the baseline: a suffix of its targets and apps

    def binary(self, *parts: str) -> str:
        path = self.root.joinpath("target", *parts)
        if not path.exists():
            sys.exit(f"bench: {path} is missing; `make bench` builds it")
        return str(path)

    def key(self, app: str) -> str:
        """An app's key in this build (it names the app's socket and log)."""
        return f"{app}-{self.label}" if self.label else app

    def target_name(self, target: str) -> str:
        return f"{target} ({self.label})" if self.label else target


@dataclass
class Target:
    name: str
    kind: str  # "ours", BASE, "peer" or "ceiling"
    apps: dict[str, str]  # what a workload uses -> App key ("nginx" for the ceiling)
    note: str = ""
    of: str = ""  # for a base: the target of ours it is another build of

    def built_by(self, build: Build) -> Target:
        """The same target, running another build's apps."""
        apps = {uses: build.key(app) for uses, app in self.apps.items()}
        return Target(build.target_name(self.name), build.label, apps, self.note, of=self.name)


@dataclass
class Site:
    """One nginx server block: a port in front of one app process (or nginx's own answer).

    Every target gets a process of its own for each workload, so that one workload's memory or
    kept connections never weigh on another's figures."""

    app: str  # the App it runs, or "nginx"
    key: str  # the process: app.workload
    # "plain", "keep" (fastcgi_keep_conn, upstream keepalive), "stream" (no buffering) or "proxy"
    # (HTTP to an HTTP server: proxy_pass to an upstream with keep-alive)
    mode: str
    # Upstream connections nginx keeps (keep and proxy modes): as many as wrk opens, so that
    # none is opened and closed per request.
    kept: int = 0
    port: int = 0


@dataclass
class Run:
    workload: str
    target: str
    round: int
    figures: dict = field(default_factory=dict)


def settings_from(args: argparse.Namespace) -> Settings:
    quick = args.quick
    return Settings(
        rounds=args.rounds or (1 if quick else 3),
        duration=args.duration or (2.0 if quick else 10.0),
        quick=quick,
        threads=args.threads,
        connections=args.connections,
        big_connections=args.big_connections,
        wrk_threads=args.wrk_threads,
        transfer_bytes=args.transfer_bytes or ((128 if quick else 1024) * MIB),
        codec_seconds=0.2 if quick else 0.5,
        only=set(args.only.split(",")) if args.only else None,
        baseline=args.baseline.resolve() if args.baseline else None,
    )


THIS_BUILD = Build(ROOT, PYTHON)


def baseline_build(root: Path) -> Build:
    """The baseline's tree: its binaries under target/, its Python face in its .venv."""
    python = root / ".venv" / "bin" / "python"
    if not python.exists():
        sys.exit(f"bench: {python} is missing; `make bench BENCH_BASELINE=REV` builds it")
    return Build(root, str(python), BASE)


def script(name: str) -> str:
    """A console script installed beside this Python (uwsgi), else on PATH."""
    found = shutil.which(name, path=str(Path(PYTHON).parent)) or shutil.which(name)
    if not found:
        sys.exit(f"bench: {name} is not installed; `make bench` installs it")
    return found


def our_apps(s: Settings, build: Build) -> list[App]:
    """Our apps in one build; the Python ones serve this tree's bench app and Django site."""
    n = str(s.threads)
    py = [build.python, "-m", "fcgi_wsgi", "--workers", n, "--bind", "unix:{sock}"]
    bench_app = ["--chdir", str(BENCH / "apps"), "bench_app:app"]
    apps = [
        App("py", [*py, "--processes", "1", *bench_app]),
        App("py2", [*py, "--processes", "2", *bench_app]),
        # Each request's line to a file beside the socket: the access log's cost.
        App("py-access", [*py, "--processes", "1", "--access-logfile", "{sock}.access.log", *bench_app]),
        App("py-django", [*py, "--processes", "1", "--chdir", str(DJANGO_SITE), "demo_site.wsgi:application"]),
        # Room for the 256 connections of the awaiting route (uvicorn and fcgisgi have no bound).
        App(
            "py-asgi",
            [
                build.python,
                "-m",
                "fcgi_wsgi",
                "--bind",
                "unix:{sock}",
                "--interface",
                "asgi",
                "--max-concurrency",
                "512",
            ]
            + ["--chdir", str(BENCH / "apps"), "bench_asgi:app"],
        ),
        App("capi-hello", [build.binary("c-examples", "hello"), "--bind", "unix:{sock}"]),
        App("capi-echo", [build.binary("c-examples", "echo"), "--bind", "unix:{sock}", "--workers", n]),
        App("capi-sink", [build.binary("bench", "capi_sink"), "--bind", "unix:{sock}", "--threads", n]),
        App("rust", [build.binary("release", "examples", "echo"), "--bind", "unix:{sock}", "--workers", n]),
        App(
            "rust-sink",
            [build.binary("bench", "cargo", "release", "sink"), "--bind", "unix:{sock}", "--workers", n],
        ),
    ]
    return [App(build.key(app.key), app.argv, app.cwd) for app in apps]


def make_apps(s: Settings, builds: list[Build]) -> dict[str, App]:
    n = str(s.threads)
    flup = [PYTHON, str(BENCH / "apps" / "flup_server.py")]
    uwsgi = [script("uwsgi"), "--fastcgi-socket", "{sock}", "--processes", "1", "--threads", n]
    uwsgi += ["--disable-logging", "--die-on-term", "--need-app"]
    libfcgi_app = THIS_BUILD.binary("bench", "libfcgi_app")
    apps = [app for build in builds for app in our_apps(s, build)]
    apps += [
        App("flup", [*flup, "bench_app:app", "{sock}", n], cwd=BENCH / "apps"),
        App("flup-django", [*flup, "demo_site.wsgi:application", "{sock}", n], cwd=DJANGO_SITE),
        App("uwsgi", [*uwsgi, "--chdir", str(BENCH / "apps"), "--module", "bench_app:app"]),
        App("uwsgi-django", [*uwsgi, "--chdir", str(DJANGO_SITE), "--module", "demo_site.wsgi:application"]),
        App("libfcgi", [script("spawn-fcgi"), "-n", "-s", "{sock}", "-M", "0600", "--", libfcgi_app, n]),
        App(
            "fcgisgi",
            [PYTHON, str(BENCH / "apps" / "fcgisgi_server.py"), "bench_asgi:app", "{sock}"],
            cwd=BENCH / "apps",
        ),
        # uvicorn with uvloop and httptools (both installed), as in production.
        App(
            "uvicorn",
            [script("uvicorn"), "--uds", "{sock}", "--app-dir", str(BENCH / "apps"), "bench_asgi:app"]
            + ["--no-access-log", "--log-level", "warning", "--lifespan", "off"],
        ),
    ]
    return {app.key: app for app in apps}


OUR_TARGETS = [
    Target("python", "ours", {"hello": "py", "routes": "py", "sink": "py", "django": "py-django"}, "fcgi_wsgi"),
    Target(
        "capi",
        "ours",
        {"hello": "capi-hello", "routes": "capi-echo", "sink": "capi-sink"},
        "hello.c (1 thread); echo.c for /big, /echo; bench/apps/capi_sink.c for /sink",
    ),
    Target("rust", "ours", {"hello": "rust", "routes": "rust", "sink": "rust-sink"}, "examples/echo.rs"),
    Target(MULTICORE, "ours", {"hello": "py2"}, "fcgi_wsgi --processes 2"),
    Target(ACCESS_LOG, "ours", {"hello": "py-access"}, "fcgi_wsgi --access-logfile FILE"),
    Target("python-asgi", "ours", {"asgi": "py-asgi"}, "fcgi_wsgi --interface asgi (bench/apps/bench_asgi.py)"),
]
PEER_TARGETS = [
    Target("flup", "peer", {"hello": "flup", "routes": "flup", "sink": "flup", "django": "flup-django"}),
    Target("uwsgi", "peer", {"hello": "uwsgi", "routes": "uwsgi", "sink": "uwsgi", "django": "uwsgi-django"}),
    Target("libfcgi", "peer", {"hello": "libfcgi", "routes": "libfcgi", "sink": "libfcgi"}, "under spawn-fcgi"),
    Target("nginx", "ceiling", {"hello": "nginx"}, "return 200"),
    Target("fcgisgi", "peer", {"asgi": "fcgisgi"}, "fcgisgi (PyPI), ASGI over FastCGI"),
    Target("uvicorn", "peer", {"asgi": "uvicorn"}, "uvicorn behind nginx proxy_pass, HTTP/1.1 kept-alive upstream"),
]
#: Targets that speak HTTP: nginx proxies to them.
PROXIED = ("uvicorn",)


def make_targets(base: Build | None) -> list[Target]:
    """Every target in the order the table shows them: each of ours followed by its base."""
    targets = []
    for target in OUR_TARGETS:
        targets.append(target)
        if base and target.name in OURS:
            targets.append(target.built_by(base))
    return targets + PEER_TARGETS


def make_workloads() -> list[Workload]:
    return [
        Workload("hello", "hello world, a connection per request", "/hello", "hello"),
        Workload("hello-keepconn", "hello world, fastcgi_keep_conn on", "/hello", "hello", keep_conn=True),
        Workload("1MiB", "1 MiB response", f"/big?n={MIB}", "routes", big=True),
        Workload("upload-10MiB", "10 MiB upload, echoed", "/echo", "routes", body_bytes=10 * MIB, big=True),
        Workload("django", "Django page /, DEBUG=False", "/", "django"),
        # Kept upstream connections for every ASGI server, as uvicorn's usual production route
        # has them (FastCGI's fastcgi_keep_conn; HTTP/1.1 keep-alive to uvicorn).
        Workload("asgi-hello", "ASGI hello world, kept connections", "/hello", "asgi", keep_conn=True),
        Workload(
            "asgi-await10ms",
            "ASGI, awaits 10 ms, 256 connections, kept",
            "/sleep10",
            "asgi",
            keep_conn=True,
            connections=256,
        ),
    ]


def transfer_workloads(s: Settings) -> list[Workload]:
    size = f"{s.transfer_bytes // MIB} MiB" if s.transfer_bytes % (1 << 30) else f"{s.transfer_bytes >> 30} GiB"
    return [
        Workload(f"upload-{size.replace(' ', '')}", f"{size} upload", "/sink", "sink", transfer="upload"),
        Workload(
            f"download-{size.replace(' ', '')}",
            f"{size} download",
            f"/big?n={s.transfer_bytes}",
            "routes",
            transfer="download",
        ),
    ]


# ---------------------------------------------------------------------------------------------
# Processes


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_app(app: App, run_dir: Path) -> None:
    app.sock = run_dir / f"{app.key}.sock"
    app.log = run_dir / f"{app.key}.log"
    argv = [a.replace("{sock}", str(app.sock)) for a in app.argv]
    with open(app.log, "wb") as log:
        app.proc = subprocess.Popen(
            argv, cwd=app.cwd, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True
        )


def wait_for_socket(app: App, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if app.proc.poll() is not None:
            break
        try:
            with socket.socket(socket.AF_UNIX) as s:
                s.connect(str(app.sock))
            return
        except OSError:
            time.sleep(0.05)
    tail = app.log.read_text(errors="replace")[-2000:] if app.log and app.log.exists() else ""
    raise RuntimeError(f"{app.key} did not listen on {app.sock}:\n{tail}")


def wait_for_port(port: int, proc: subprocess.Popen, log: Path, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nginx is not listening on {port}:\n{log.read_text(errors='replace')[-2000:]}")


def stop(proc: subprocess.Popen | None) -> None:
    """Stops a process we started, and its group (the children it forked)."""
    if proc is None or proc.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, 5), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


def process_tree(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    tree, todo = [], [pid]
    while todo:
        p = todo.pop()
        tree.append(p)
        todo.extend(children.get(p, []))
    return tree


def status_kib(pid: int, field_name: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def cpu_seconds(pids: list[int]) -> float:
    ticks = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])
        except (OSError, IndexError):
            pass
    return ticks / os.sysconf("SC_CLK_TCK")


class Memory:
    """The peak resident memory of a process tree while something runs: each process's high-water
    mark (VmHWM, reset first through /proc/PID/clear_refs) added up, and VmRSS sampled every 50 ms
    for processes born meanwhile."""

    def __init__(self, pid: int):
        self.pid = pid
        self.sampled_kib = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> Memory:
        self.pids = process_tree(self.pid)
        for pid in self.pids:
            try:
                Path(f"/proc/{pid}/clear_refs").write_text("5")
            except OSError:
                pass
        self.cpu_before = cpu_seconds(self.pids)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        pids = process_tree(self.pid)
        self.cpu = cpu_seconds(pids) - self.cpu_before
        self.peak_kib = max(self.sampled_kib, sum(status_kib(p, "VmHWM") for p in pids))

    def _sample(self) -> None:
        while not self._stop.wait(0.05):
            self.sampled_kib = max(self.sampled_kib, sum(status_kib(p, "VmRSS") for p in process_tree(self.pid)))


# ---------------------------------------------------------------------------------------------
# nginx

FASTCGI_PARAMS = """
fastcgi_param QUERY_STRING $query_string;
fastcgi_param REQUEST_METHOD $request_method;
fastcgi_param CONTENT_TYPE $content_type;
fastcgi_param CONTENT_LENGTH $content_length;
fastcgi_param SCRIPT_NAME "";
fastcgi_param PATH_INFO $uri;
fastcgi_param REQUEST_URI $request_uri;
fastcgi_param DOCUMENT_URI $document_uri;
fastcgi_param DOCUMENT_ROOT $document_root;
fastcgi_param SERVER_PROTOCOL $server_protocol;
fastcgi_param REQUEST_SCHEME $scheme;
fastcgi_param GATEWAY_INTERFACE CGI/1.1;
fastcgi_param SERVER_SOFTWARE nginx/$nginx_version;
fastcgi_param REMOTE_ADDR $remote_addr;
fastcgi_param REMOTE_PORT $remote_port;
fastcgi_param SERVER_ADDR $server_addr;
fastcgi_param SERVER_PORT $server_port;
fastcgi_param SERVER_NAME $server_name;
fastcgi_param REDIRECT_STATUS 200;
"""


def nginx_conf(run_dir: Path, sites: list[Site], apps: dict[str, App], s: Settings) -> str:
    temp = "\n".join(f"    {kind}_temp_path {run_dir / kind};" for kind in ("client_body", "fastcgi", "proxy"))
    temp += "\n" + "\n".join(f"    {kind}_temp_path {run_dir / kind};" for kind in ("uwsgi", "scgi"))
    upstreams, servers = [], []
    for site in sites:
        if site.app == "nginx":
            body = 'default_type text/plain; return 200 "Hello, world!";'
        else:
            upstream = "".join(c if c.isalnum() else "_" for c in site.key)
            kept = site.mode in ("keep", "proxy")
            keepalive = f" keepalive {site.kept}; keepalive_requests 1000000;" if kept else ""
            upstreams.append(f"    upstream {upstream} {{ server unix:{apps[site.key].sock};{keepalive} }}")
            body = f"include {run_dir / 'fastcgi_params'}; fastcgi_pass {upstream};"
            if site.mode == "proxy":
                # The usual production route to an HTTP app server: kept HTTP/1.1 connections.
                body = f'proxy_pass http://{upstream}; proxy_http_version 1.1; proxy_set_header Connection "";'
                body += " proxy_set_header Host $host; proxy_buffering on;"
            elif site.mode == "keep":
                # A request stuck behind kept connections (a thread per connection) becomes a 504
                # that wrk counts, rather than a silent stall.
                body += " fastcgi_keep_conn on; fastcgi_read_timeout 5s;"
            elif site.mode == "stream":
                body += " fastcgi_request_buffering off; fastcgi_buffering off;"
        servers.append(f"    server {{ listen 127.0.0.1:{site.port}; location / {{ {body} }} }}")
    user = "user root;" if os.geteuid() == 0 else ""
    return f"""# Written by bench/run.py for one run.
{user}
worker_processes 1;
daemon off;
pid {run_dir / "nginx.pid"};
error_log {run_dir / "nginx-error.log"} warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    keepalive_requests 1000000;
    client_max_body_size 0;
    client_body_buffer_size 16m;
    fastcgi_max_temp_file_size 0;
    fastcgi_read_timeout 30s;
{temp}
{chr(10).join(upstreams)}
{chr(10).join(servers)}
}}
"""


# ---------------------------------------------------------------------------------------------
# Checks: every target gives the right answer before anything is timed


def fetch(port: int, path: str, body: bytes | None = None, timeout: float = 30.0) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        headers = {"Content-Type": "application/octet-stream"} if body is not None else {}
        conn.request("POST" if body is not None else "GET", path, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def check(workload: Workload, port: int) -> str | None:
    """What is wrong with the target's answer, or None."""
    if workload.transfer:
        # The same routes, small: the test never holds a transfer's bytes.
        upload = workload.transfer == "upload"
        status, got = fetch(port, "/sink", bytes(1000)) if upload else fetch(port, "/big?n=1000")
        if status != 200 or (got != b"1000\n" if upload else len(got) != 1000):
            return f"status {status}, {got[:60]!r}"
        return None
    body = bytes(range(256)) * (workload.body_bytes // 256) if workload.body_bytes else None
    status, got = fetch(port, workload.path, body)
    if status != 200:
        return f"status {status}, {got[:80]!r}"
    if workload.uses in ("hello", "asgi") and got != HELLO:
        return f"body {got[:60]!r}"
    if workload.name == "1MiB" and len(got) != MIB:
        return f"{len(got)} bytes"
    if body is not None and got != body:
        return f"echoed {len(got)} bytes, not the {len(body)} sent"
    if workload.uses == "django" and b"Hello from Django" not in got:
        return f"page {got[:80]!r}"
    return None


# ---------------------------------------------------------------------------------------------
# Measuring


def wrk(s: Settings, workload: Workload, port: int, duration: float) -> dict:
    connections = workload.connections or (s.big_connections if workload.big else s.connections)
    argv = ["wrk", "-t", str(min(s.wrk_threads, connections)), "-c", str(connections), "--timeout", "10s"]
    argv += ["-d", f"{max(1, round(duration))}s", "-s", str(WRK_SCRIPT), f"http://127.0.0.1:{port}{workload.path}"]
    env = dict(os.environ, BENCH_BODY_BYTES=str(workload.body_bytes))
    out = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=duration + 60)
    for line in out.stdout.splitlines():
        if line.startswith("BENCH_JSON "):
            return json.loads(line[len("BENCH_JSON ") :])
    raise RuntimeError(f"wrk said nothing usable:\n{out.stdout}\n{out.stderr}")


def measure_wrk(s: Settings, workload: Workload, port: int, pid: int | None) -> dict:
    if pid is None:
        raw = wrk(s, workload, port, s.duration)
        peak, cpu = None, None
    else:
        with Memory(pid) as memory:
            raw = wrk(s, workload, port, s.duration)
        peak, cpu = memory.peak_kib / 1024, memory.cpu
    seconds = raw["duration_us"] / 1e6
    errors = raw["status"] + raw["connect"] + raw["read"] + raw["write"] + raw["timeout"]
    answered = raw["requests"] > 0
    ok = raw["requests"] - raw["status"]
    return {
        "req_s": ok / seconds,
        "p50_ms": raw["p50_us"] / 1000 if answered else None,
        "p99_ms": raw["p99_us"] / 1000 if answered else None,
        "mb_s": raw["bytes"] / seconds / 1e6,
        "rss_mib": peak,
        "cpu_pct": None if cpu is None else 100 * cpu / seconds,
        "cpu_us": cpu * 1e6 / ok if cpu is not None and ok else None,
        "errors": errors,
        "wrk": raw,
    }


def measure_transfer(s: Settings, workload: Workload, port: int, pid: int) -> dict:
    n = s.transfer_bytes
    url = f"http://127.0.0.1:{port}{workload.path}"
    curl = ["curl", "-sS", "--max-time", "600", "-w", "\n%{http_code} %{size_download} %{time_total}"]
    with Memory(pid) as memory:
        if workload.transfer == "upload":
            # A generator on curl's stdin: the test never holds the body.
            source = subprocess.Popen(["head", "-c", str(n), "/dev/zero"], stdout=subprocess.PIPE)
            headers = ["-H", "Content-Type: application/octet-stream", "-H", f"Content-Length: {n}"]
            headers += ["-H", "Transfer-Encoding:", "-H", "Expect:"]
            out = subprocess.run([*curl, *headers, "-T", "-", url], stdin=source.stdout, capture_output=True)
            source.stdout.close()
            source.wait()
            body, _, tail = out.stdout.decode(errors="replace").rpartition("\n")
            ok = body.strip() == str(n)
        else:
            out = subprocess.run([*curl, "-o", "/dev/null", url], capture_output=True)
            tail = out.stdout.decode(errors="replace").strip()
            ok = tail.split()[1:2] == [str(n)] if tail else False
    parts = tail.split()
    status, seconds = (parts[0], float(parts[2])) if len(parts) == 3 else ("?", 0.0)
    ok = ok and status == "200"
    return {
        "req_s": None,
        "p50_ms": None,
        "p99_ms": None,
        "mb_s": n / seconds / 1e6 if ok and seconds else None,
        "rss_mib": memory.peak_kib / 1024,
        "cpu_pct": 100 * memory.cpu / seconds if seconds else None,
        "cpu_us": None,
        "errors": 0 if ok else 1,
        "seconds": seconds,
        "error": None if ok else f"status {status}: {out.stderr.decode(errors='replace')[-200:]}",
    }


def codec(s: Settings) -> list[dict]:
    argv = [THIS_BUILD.binary("bench", "cargo", "release", "codec"), "--seconds", str(s.codec_seconds), "--rounds", "3"]
    out = subprocess.run(argv, capture_output=True, text=True, check=True)
    return [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]


# ---------------------------------------------------------------------------------------------
# Reporting

METRICS = ("req_s", "p50_ms", "p99_ms", "mb_s", "rss_mib", "cpu_pct", "cpu_us")
HEADINGS = ("req/s", "p50 ms", "p99 ms", "MB/s", "RSS MiB", "app CPU%", "CPU µs/req")
WIDTHS = tuple(max(10, len(h) + 2) for h in HEADINGS)
# The figures shown as ratios: CPU% is not one (a faster target uses more of it for more requests).
RATIO_METRICS = tuple(m for m in METRICS if m != "cpu_pct")
TARGET_WIDTH = 24


def median(values: list) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def summarize(runs: list[Run]) -> dict[str, dict[str, dict]]:
    grouped: dict[tuple[str, str], list[Run]] = {}
    for run in runs:
        grouped.setdefault((run.workload, run.target), []).append(run)
    table: dict[str, dict[str, dict]] = {}
    for (workload, target), group in grouped.items():
        row = {m: median([r.figures.get(m) for r in group]) for m in METRICS}
        row["errors"] = sum(r.figures.get("errors", 0) for r in group)
        row["rounds"] = len(group)
        table.setdefault(workload, {})[target] = row
    # nginx answers hello itself, kept upstream connections or not: measured once, in hello.
    ceiling = table.get("hello", {}).get("nginx")
    if ceiling and "hello-keepconn" in table:
        table["hello-keepconn"]["nginx"] = {**ceiling, "measured_in": "hello"}
    return table


def comparisons(targets: list[Target]) -> list[tuple[str, str]]:
    """The ratio rows, as (target, the target it is divided by), in the table's order: each of ours
    by its base, then by each peer; each base by each peer."""
    peers = [t.name for t in targets if t.name in PEERS]
    bases = {t.of: t.name for t in targets if t.of}
    pairs = []
    for target in targets:
        if target.name in OURS or target.of:
            pairs += [(target.name, bases[target.name])] if target.name in bases else []
            pairs += [(target.name, peer) for peer in peers]
    return pairs


def ratios(table: dict[str, dict[str, dict]], targets: list[Target]) -> dict[str, dict[str, dict[str, dict]]]:
    """workload -> target -> the target it is divided by -> metric -> ratio."""
    out: dict[str, dict[str, dict[str, dict]]] = {}
    for workload, rows in table.items():
        for a, b in comparisons(targets):
            if a in rows and b in rows:
                pair = {}
                for m in RATIO_METRICS:
                    x, y = rows[a][m], rows[b][m]
                    pair[m] = x / y if x is not None and y else None
                out.setdefault(workload, {}).setdefault(a, {})[b] = pair
    return out


def times(ratio: float | None) -> str:
    if ratio is None:
        return "-"
    return "<0.01x" if ratio < 0.01 else f"{ratio:.2f}x"


def fmt(value: float | None, metric: str) -> str:
    if value is None:
        return "-"
    if metric == "req_s":
        return f"{value:,.0f}"
    if metric in ("p50_ms", "p99_ms"):
        return f"{value:.2f}" if value < 100 else f"{value:,.0f}"
    return f"{value:,.1f}"


def ratio_cells(pair: dict) -> str:
    return "".join(f"{times(pair[m]) if m in pair else '':>{w}}" for m, w in zip(METRICS, WIDTHS))


def render(
    table, ratio_table, targets: list[Target], workloads: list[Workload], codec_rows: list[dict], meta: dict
) -> str:
    lines = []
    load = meta["load_before"], meta["load_after"]
    lines.append(
        f"fcgi bench: {meta['rounds']} round(s) x {meta['duration']:g}s, medians; {meta['cpus']} CPUs; "
        f"load average {load[0][0]:.2f} before, {load[1][0]:.2f} after; {meta['started']}"
    )
    lines.append(f"ours: {meta['commits']['ours']}")
    if "base" in meta["commits"]:
        lines.append(f"base: {meta['commits']['base']}")
    lines.append("ratios are a / b for each figure: above 1 is better for req/s and MB/s, below 1 for the rest")
    head = f"{'workload':<16} {'target':<{TARGET_WIDTH}}"
    head += "".join(f"{h:>{w}}" for h, w in zip(HEADINGS, WIDTHS)) + f"{'errors':>8}"
    lines += ["", head, "-" * len(head)]
    for workload in workloads:
        rows = table.get(workload.name)
        if not rows:
            continue
        for target in targets:
            row = rows.get(target.name)
            if row is None:
                continue
            cells = "".join(f"{fmt(row[m], m):>{w}}" for m, w in zip(METRICS, WIDTHS))
            name = target.name + (f" (in {row['measured_in']})" if "measured_in" in row else "")
            lines.append(f"{workload.name:<16} {name:<{TARGET_WIDTH}}{cells}{row['errors']:>8}")
        for a, divisors in ratio_table.get(workload.name, {}).items():
            for b, pair in divisors.items():
                lines.append(f"{'':<16} {a + ' / ' + b:<{TARGET_WIDTH}}{ratio_cells(pair)}")
        for variant, label in ((MULTICORE, "processes 2 / 1"), (ACCESS_LOG, "access log on / off")):
            if workload.name == "hello" and variant in rows and "python" in rows:
                one, two = rows["python"], rows[variant]
                pair = {m: two[m] / one[m] if two[m] is not None and one[m] else None for m in RATIO_METRICS}
                lines.append(f"{'':<16} {label:<{TARGET_WIDTH}}{ratio_cells(pair)}")
        lines.append("")
    if codec_rows:
        lines.append("codec (fcgi_core::protocol, no sockets; one copy in or out, as a socket would make)")
        lines.append(f"{'case':<34}{'MB/s':>12}{'ops/s':>14}  one op")
        for row in codec_rows:
            lines.append(f"{row['case']:<34}{row['mb_per_s']:>12,.0f}{row['ops_per_s']:>14,.0f}  {row['unit']}")
        lines.append("")
    notes = [f"{t.name}: {t.note}" for t in targets if t.note and not t.of]
    lines.append("targets: " + "; ".join(notes))
    return "\n".join(lines)


# The chart's panels: for each workload timed by wrk, req/s and CPU per request.
CHART_METRICS = (("req_s", "req/s", "higher is better"), ("cpu_us", "CPU µs/req", "lower is better"))


def short(value: float, metric: str) -> str:
    if metric == "req_s":
        return f"{value / 1000:,.1f}k" if value >= 1000 else f"{value:,.0f}"
    return f"{value:,.1f}" if value < 100 else f"{value:,.0f}"


def chart(result: dict) -> str:
    """The main table as an SVG: a row of panels per workload, req/s and CPU µs per request, a
    bar per target (ours in colour); from the JSON that run() writes."""
    meta, table, targets = result["meta"], result["medians"], result["targets"]
    rows = []
    for workload in result["workloads"]:
        figures = table.get(workload)
        if not figures:
            continue
        panels = []
        for metric, heading, note in CHART_METRICS:
            bars = []
            for name, target in targets.items():
                row = figures.get(name)
                if row is None or (row.get(metric) is None and target["kind"] == "ceiling"):
                    continue
                value = row.get(metric)
                text = short(value, metric) if value is not None else "-"
                bars.append(Bar(name, value, target["kind"], text))
            panels.append(Panel(f"{workload}: {heading}", bars, note))
        rows.append(panels)
    load = meta["load_before"][0], meta.get("load_after", [0])[0]
    subtitle = [
        f"make bench: medians of {meta['rounds']} round(s) x {meta['duration']:g} s; nginx (1 worker) in front, "
        f"wrk -c{meta['connections']} ({meta['big_connections']} for 1 MiB and 10 MiB); "
        f"{meta['threads']} threads per app",
        f"{meta['started'][:16].replace('T', ' ')}, {meta.get('machine') or str(meta['cpus']) + ' CPUs'}, "
        f"load average {load[0]:.2f} before, {load[1]:.2f} after; ours: {commit_label(meta['commits']['ours'])}",
    ]
    return grid_svg("FastCGI servers: requests per second and app CPU per request", subtitle, rows)


def machine() -> str:
    """The number of CPUs and their model, as /proc/cpuinfo names it."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{os.cpu_count()} CPUs, {line.split(':', 1)[1].strip()}"
    except OSError:
        pass
    return f"{os.cpu_count()} CPUs"


def versions() -> dict:
    def first_line(argv: list[str]) -> str:
        try:
            out = subprocess.run(argv, capture_output=True, text=True, timeout=10)
            return (out.stdout or out.stderr).strip().splitlines()[0]
        except (OSError, IndexError, subprocess.SubprocessError):
            return "?"

    found = {"python": platform.python_version(), "nginx": first_line(["nginx", "-v"])}
    found["wrk"] = first_line(["wrk", "--version"])
    found["uwsgi"] = first_line([script("uwsgi"), "--version"])
    found["flup"] = first_line([PYTHON, "-c", "import importlib.metadata as m; print(m.version('flup'))"])
    found["django"] = first_line([PYTHON, "-c", "import django; print(django.get_version())"])
    found["libfcgi"] = first_line(["dpkg-query", "-W", "-f", "${Version}", "libfcgi-dev"])
    return found


def commit(root: Path) -> str:
    """The tree's commit and subject, and whether tracked files changed since."""

    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True).stdout.strip()
        except OSError:
            return ""

    head = git("log", "-1", "--format=%h %s") or "?"
    return head + (" (with uncommitted changes)" if git("status", "--porcelain", "--untracked-files=no") else "")


# ---------------------------------------------------------------------------------------------
# The run


class Bench:
    def __init__(self, s: Settings):
        self.s = s
        self.run_dir = Path(tempfile.mkdtemp(prefix="fcgi-bench-"))
        self.base = baseline_build(s.baseline) if s.baseline else None
        self.targets = make_targets(self.base)
        self.templates = make_apps(s, [THIS_BUILD, self.base] if self.base else [THIS_BUILD])
        self.apps: dict[str, App] = {}
        self.sites: list[Site] = []
        self.nginx: subprocess.Popen | None = None

    def plan(self, workloads: list[Workload], transfers: list[Workload]) -> list[tuple[Workload, Target, Site]]:
        plan = []
        for workload in workloads + transfers:
            for target in self.targets:
                app = target.apps.get(workload.uses)
                # hello-keepconn takes nginx's ceiling from hello: kept upstream connections change
                # nothing for nginx's own answer. The multi-core line is for hello alone.
                if app is None or (workload.keep_conn and target.name in ("nginx", MULTICORE, ACCESS_LOG)):
                    continue
                mode = "keep" if workload.keep_conn else "stream" if workload.transfer else "plain"
                mode = "proxy" if target.name in PROXIED else mode
                kept = workload.connections or self.s.connections
                site = Site(app, f"{app}.{workload.name}", "plain" if app == "nginx" else mode, kept)
                plan.append((workload, target, site))
        return plan

    def start(self, plan) -> None:
        self.sites = [site for _, _, site in plan]
        for site in self.sites:
            if site.app != "nginx":
                template = self.templates[site.app]
                self.apps[site.key] = App(site.key, template.argv, template.cwd)
                start_app(self.apps[site.key], self.run_dir)
        for app in self.apps.values():
            wait_for_socket(app)
        for site in self.sites:
            site.port = free_port()
        (self.run_dir / "fastcgi_params").write_text(FASTCGI_PARAMS)
        conf = self.run_dir / "nginx.conf"
        conf.write_text(nginx_conf(self.run_dir, self.sites, self.apps, self.s))
        log = self.run_dir / "nginx.log"
        with open(log, "wb") as out:
            self.nginx = subprocess.Popen(
                ["nginx", "-p", str(self.run_dir), "-c", str(conf)], stdout=out, stderr=out, start_new_session=True
            )
        for site in self.sites:
            wait_for_port(site.port, self.nginx, log)

    def stop(self) -> None:
        stop(self.nginx)
        for app in self.apps.values():
            stop(app.proc)

    def pid(self, site: Site) -> int | None:
        return None if site.app == "nginx" else self.apps[site.key].proc.pid


def run(s: Settings) -> int:
    workloads = [w for w in make_workloads() if s.only is None or w.name in s.only]
    transfers = [w for w in transfer_workloads(s) if s.only is None or s.only & {w.name, "transfers"}]
    bench = Bench(s)
    plan = bench.plan(workloads, transfers)
    meta = {
        "started": datetime.datetime.now().isoformat(timespec="seconds"),
        "rounds": s.rounds,
        "duration": s.duration,
        "quick": s.quick,
        "threads": s.threads,
        "connections": s.connections,
        "big_connections": s.big_connections,
        "wrk_threads": s.wrk_threads,
        "transfer_bytes": s.transfer_bytes,
        "cpus": os.cpu_count(),
        "machine": machine(),
        "kernel": platform.release(),
        "load_before": os.getloadavg(),
        "versions": versions(),
        "commits": {"ours": commit(ROOT), **({"base": commit(bench.base.root)} if bench.base else {})},
        "baseline": str(bench.base.root) if bench.base else None,
    }
    once = sum(1 for w, _, _ in plan if w.transfer)
    print(
        f"bench: {len(plan) - once} wrk runs a round, {s.rounds} round(s) of {s.duration:g}s, then {once} transfers; "
        f"work folder {bench.run_dir}"
    )
    runs: list[Run] = []
    failed: dict[tuple[str, str], str] = {}
    try:
        bench.start(plan)
        for workload, target, site in plan:
            problem = check(workload, site.port)
            if problem:
                failed[(workload.name, target.name)] = problem
                print(f"bench: {target.name} fails {workload.name}: {problem}; left out", file=sys.stderr)
        # No warm-up beyond the checks: each process has answered before its first timed run, and
        # the rotation puts a different target first in each round.
        timed = [(w, t, site) for w, t, site in plan if not w.transfer and (w.name, t.name) not in failed]
        for round_index in range(s.rounds):
            for workload in workloads:
                entries = [(t, site) for w, t, site in timed if w is workload]
                shift = round_index % max(1, len(entries))
                for target, site in entries[shift:] + entries[:shift]:
                    figures = measure_wrk(s, workload, site.port, bench.pid(site))
                    runs.append(Run(workload.name, target.name, round_index, figures))
                    print(
                        f"  round {round_index + 1} {workload.name:<15} {target.name:<13} "
                        f"{figures['req_s']:>10,.0f} req/s  p99 {fmt(figures['p99_ms'], 'p99_ms'):>8} ms  "
                        f"errors {figures['errors']}",
                        flush=True,
                    )
        for workload, target, site in plan:
            if workload.transfer and (workload.name, target.name) not in failed:
                figures = measure_transfer(s, workload, site.port, bench.pid(site))
                runs.append(Run(workload.name, target.name, 0, figures))
                rate = f"{figures['mb_s']:,.0f} MB/s" if figures["mb_s"] else figures["error"]
                print(f"  {workload.name:<22} {target.name:<13} peak {figures['rss_mib']:8.1f} MiB  {rate}", flush=True)
    finally:
        bench.stop()
    codec_rows = codec(s) if s.only is None or "codec" in s.only else []
    meta["load_after"] = os.getloadavg()
    table = summarize(runs)
    ratio_table = ratios(table, bench.targets)
    text = render(table, ratio_table, bench.targets, workloads + transfers, codec_rows, meta)
    if failed:
        text += "\nleft out (wrong answer before timing): " + "; ".join(f"{t} {w}: {p}" for (w, t), p in failed.items())
    print()
    print(text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    result = {
        "meta": meta,
        "targets": {t.name: {"kind": t.kind, "apps": t.apps, "note": t.note} for t in bench.targets},
        "workloads": {w.name: {"title": w.title, "path": w.path, "body_bytes": w.body_bytes} for w in workloads},
        "medians": table,
        "ratios": ratio_table,
        "codec": codec_rows,
        "left_out": {f"{w} {t}": p for (w, t), p in failed.items()},
        "runs": [r.__dict__ for r in runs],
        "table": text,
    }
    path = RESULTS / f"bench-{stamp}.json"
    path.write_text(json.dumps(result, indent=1))
    svg = path.with_suffix(".svg")
    svg.write_text(chart(result))
    wrote = f"{path.relative_to(ROOT)} and {svg.relative_to(ROOT)}"
    if failed:
        print(f"\nbench: wrote {wrote}; the processes' logs are in {bench.run_dir}")
    else:
        shutil.rmtree(bench.run_dir, ignore_errors=True)
        print(f"\nbench: wrote {wrote}")
    kinds = {t.name: t.kind for t in bench.targets}
    return 1 if any(kinds[t] == "ours" for _, t in failed) else 0


# ---------------------------------------------------------------------------------------------
# Profiling


def top_frames(collapsed: Path, limit: int = 12) -> list[str]:
    """py-spy's collapsed stacks: the functions most often running (self) and on the stack."""
    self_counts: Counter[str] = Counter()
    total_counts: Counter[str] = Counter()
    samples = 0
    for line in collapsed.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        frames = [f for f in stack.split(";") if f and not f.startswith("thread (")]
        if not count.isdigit() or not frames:
            continue
        samples += int(count)
        self_counts[frames[-1]] += int(count)
        for frame in set(frames):
            total_counts[frame] += int(count)
    lines = [f"py-spy: {samples} samples of running Python threads; self:"]
    lines += [f"  {100 * c / samples:5.1f}%  {f}" for f, c in self_counts.most_common(limit)]
    lines += ["on the stack:"]
    lines += [f"  {100 * c / samples:5.1f}%  {f}" for f, c in total_counts.most_common(limit)]
    return lines


def perf_report(data: Path, limit: int = 15) -> list[str]:
    """perf's on-CPU samples: each library's share, then user-space functions with the kernel work
    they cause (libc's syscall wrappers show what the syscalls cost), then user-space self time.

    In a VM without a PMU the samples come from a timer and kernel self time lands on the code that
    re-enables interrupts (the end of a context switch); user-space call chains are cut short where
    a library has no frame pointers."""

    def report(*args: str) -> list[str]:
        argv = ["perf", "report", "-i", str(data), "--stdio", "-g", "none", *args]
        text = subprocess.run(argv, capture_output=True, text=True).stdout
        rows = [" ".join(line.rstrip(" -").split()) for line in text.splitlines() if line.strip() and line[0] != "#"]
        return [f"  {row}" for row in rows if "[.] 0x" not in row and "[.] 000" not in row]

    lines = ["perf: share of on-CPU samples by library:"]
    lines += report("--no-children", "--sort", "dso", "--percent-limit", "1")
    lines += ["perf: user-space functions, with callees (kernel included) / self:"]
    lines += [r for r in report("--children", "--sort", "symbol", "--percent-limit", "1") if "[.]" in r][:limit]
    lines += ["perf: user-space self time:"]
    lines += [r for r in report("--no-children", "--sort", "dso,symbol", "--percent-limit", "0.5") if "[.]" in r][
        :limit
    ]
    return lines


def profile(s: Settings, seconds: float) -> int:
    """Our Python and C targets under wrk: perf (native, on-CPU) and, for Python, py-spy.

    The hello workloads, or those ``--only`` names (``asgi-hello`` profiles the ASGI face)."""
    chosen = [w for w in make_workloads() if w.name in (s.only or {"hello", "hello-keepconn"})]
    bench = Bench(s)
    plan = [(w, t, site) for w, t, site in bench.plan(chosen, []) if t.name in ("python", "capi", "python-asgi")]
    out_dir = RESULTS / f"profile-{datetime.datetime.now().strftime('%Y%m%d-%H%M%S')}"
    out_dir.mkdir(parents=True, exist_ok=True)
    timed = Settings(**{**s.__dict__, "duration": seconds})
    report = [f"load average {os.getloadavg()[0]:.2f}; {seconds:g}s of wrk for each profile"]
    try:
        bench.start(plan)
        for workload, target, site in plan:
            wrk(timed, workload, site.port, 1)
            pid = bench.pid(site)
            name = f"{target.name}-{workload.name}"
            profilers = {
                "perf": (
                    out_dir / f"{name}.perf",
                    ["perf", "record", "-F", "999", "-g", "-p", str(pid), "-o", str(out_dir / f"{name}.perf")]
                    + ["--", "sleep", f"{seconds:g}"],
                )
            }
            if target.name.startswith("python"):
                out = out_dir / f"{name}.py-spy.txt"
                argv = ["py-spy", "record", "--format", "raw", "--rate", "200", "--duration", f"{seconds:g}"]
                profilers["py-spy"] = (out, [*argv, "--pid", str(pid), "--output", str(out)])
            for tool, (out, argv) in profilers.items():
                if not shutil.which(argv[0]):
                    report.append(f"{tool} is not installed")
                    continue
                profiler = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                time.sleep(0.5)
                figures = measure_wrk(timed, workload, site.port, pid)
                _, err = profiler.communicate(timeout=seconds + 60)
                report += [
                    "",
                    f"== {name} under {tool}: {figures['req_s']:,.0f} req/s, app CPU {figures['cpu_pct']:.0f}%",
                ]
                if profiler.returncode != 0 or not out.exists():
                    report.append(f"{tool} failed: {err.decode(errors='replace')[-500:]}")
                else:
                    report += perf_report(out) if tool == "perf" else top_frames(out)
    finally:
        bench.stop()
    shutil.rmtree(bench.run_dir, ignore_errors=True)
    text = "\n".join(report)
    (out_dir / "report.txt").write_text(text)
    print(text)
    print(f"\nbench: profiles in {out_dir.relative_to(ROOT)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    env = os.environ.get
    parser.add_argument("--rounds", type=int, default=int(env("BENCH_ROUNDS") or 0) or None)
    parser.add_argument("--duration", type=float, default=float(env("BENCH_DURATION") or 0) or None)
    parser.add_argument("--quick", action="store_true", default=env("BENCH_QUICK", "") not in ("", "0"))
    parser.add_argument("--threads", type=int, default=4, help="threads of every target that has them")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections (hello, Django)")
    parser.add_argument("--big-connections", type=int, default=8, help="wrk connections (1 MiB, 10 MiB)")
    parser.add_argument("--wrk-threads", type=int, default=2)
    parser.add_argument("--transfer-bytes", type=int, help="size of the peak-RSS upload and download")
    parser.add_argument(
        "--only", help="comma-separated workloads: hello, hello-keepconn, 1MiB, upload-10MiB, django, transfers, codec"
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        metavar="DIR",
        help="also our targets built in the tree DIR, as '<target> (base)' (make bench BENCH_BASELINE=REV)",
    )
    parser.add_argument("--profile", type=float, metavar="SECONDS", help="profile our hello (or --only) targets")
    parser.add_argument("--chart", type=Path, metavar="JSON", help="only draw the chart of a results file, beside it")
    args = parser.parse_args(argv)
    if args.chart:
        svg = args.chart.with_suffix(".svg")
        svg.write_text(chart(json.loads(args.chart.read_text())))
        print(f"bench: wrote {svg}")
        return 0
    s = settings_from(args)
    if args.profile:
        return profile(s, args.profile)
    return run(s)


if __name__ == "__main__":
    sys.exit(main())

"""The README's sizing table: the example Django site's ``/`` behind nginx, served by our Python
face with several ``--processes`` × ``--workers``, and with no flag at all (the defaults).

``python3 bench/sizing.py [--rounds 3] [--duration 4] [--connections 8] [--sizes 1x1,1x2,...]``

It uses bench/run.py's machinery (one nginx of one worker, a loopback port per server, wrk with
bench/wrk.lua, every answer checked first) and its method: each round runs every size, in an
order rotated by one per round, and the table quotes the median of the rounds. Run it with the
Python that has the package installed (``make python-install``), on a quiet machine: the load
average before and after is printed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run  # noqa: E402

#: processes × workers, as the README's table lists them; "default" gives no flag.
SIZES = ("1x1", "1x2", "1x4", "2x1", "2x2", "default")


def argv(size: str) -> list[str]:
    """Our server for the Django site, at `size`."""
    flags = [] if size == "default" else ["--processes", size.split("x")[0], "--workers", size.split("x")[1]]
    django = ["--chdir", str(run.DJANGO_SITE), "demo_site.wsgi:application"]
    return [run.PYTHON, "-m", "fcgi_wsgi", "--bind", "unix:{sock}", *flags, *django]


def measure(sizes: list[str], rounds: int, duration: float, connections: int) -> dict[str, list[float]]:
    s = run.Settings(
        rounds=rounds,
        duration=duration,
        quick=False,
        threads=1,
        connections=connections,
        big_connections=connections,
        wrk_threads=2,
        transfer_bytes=0,
        codec_seconds=0,
        only=None,
        baseline=None,
    )
    workload = run.Workload("django", "Django page /, DEBUG=False", "/", "django", connections=connections)
    run_dir = Path(tempfile.mkdtemp(prefix="fcgi-sizing-"))
    apps = {size: run.App(f"django-{size}", argv(size), run.DJANGO_SITE) for size in sizes}
    sites = [run.Site(app.key, app.key, "plain") for app in apps.values()]
    keyed = {app.key: app for app in apps.values()}
    nginx = None
    try:
        for app in apps.values():
            run.start_app(app, run_dir)
        for app in apps.values():
            run.wait_for_socket(app)
        for site in sites:
            site.port = run.free_port()
        (run_dir / "fastcgi_params").write_text(run.FASTCGI_PARAMS)
        conf = run_dir / "nginx.conf"
        conf.write_text(run.nginx_conf(run_dir, sites, keyed, s))
        log = run_dir / "nginx.log"
        with open(log, "wb") as out:
            nginx = run.subprocess.Popen(
                ["nginx", "-p", str(run_dir), "-c", str(conf)], stdout=out, stderr=out, start_new_session=True
            )
        ports = {}
        for size, site in zip(sizes, sites):
            run.wait_for_port(site.port, nginx, log)
            wrong = run.check(workload, site.port)
            if wrong:
                sys.exit(f"sizing: {size}: {wrong}")
            ports[size] = site.port
        results: dict[str, list[float]] = {size: [] for size in sizes}
        for round_ in range(rounds):
            shift = round_ % len(sizes)
            for size in sizes[shift:] + sizes[:shift]:
                raw = run.wrk(s, workload, ports[size], duration)
                errors = raw["status"] + raw["connect"] + raw["read"] + raw["write"] + raw["timeout"]
                if errors:
                    sys.exit(f"sizing: {size}: {errors} errors in round {round_ + 1}")
                results[size].append(raw["requests"] / (raw["duration_us"] / 1e6))
        return results
    finally:
        run.stop(nginx)
        for app in apps.values():
            run.stop(app.proc)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--duration", type=float, default=4)
    p.add_argument("--connections", type=int, default=8)
    p.add_argument("--sizes", default=",".join(SIZES), help="comma-separated PxW, or default")
    args = p.parse_args()
    sizes = args.sizes.split(",")
    before = os.getloadavg()[0]
    results = measure(sizes, args.rounds, args.duration, args.connections)
    after = os.getloadavg()[0]
    print(f"{os.cpu_count()} cores; load average {before:.2f} before, {after:.2f} after")
    print(f"wrk -c{args.connections}, median of {args.rounds} runs of {args.duration:g} s\n")
    print("| processes × workers | " + " | ".join(size.replace("x", " × ") for size in sizes) + " |")
    print("|---|" + "---|" * len(sizes))
    print("| req/s | " + " | ".join(f"{statistics.median(results[size]):,.0f}" for size in sizes) + " |")
    for size in sizes:
        print(f"{size}: " + ", ".join(f"{r:,.0f}" for r in results[size]))
    return 0


if __name__ == "__main__":
    sys.exit(main())

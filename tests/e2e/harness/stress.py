"""Fronts for the reliability, soak and memory tests, built from the matrix's pieces.

- `nginx_streaming`: nginx passing bodies both ways as they come (no request buffering, no
  response buffering), for the 1 GiB transfers.
- `apache_fcgid_recycling`: mod_fcgid recycling each app process after N requests, with the
  app's own `--max-requests N` to match.
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from . import apache, nginx
from .apps import App
from .backend import Backend
from .fronts import Front
from .net import free_port


def with_args(app: App, folder: Path, *args: str) -> App:
    """`app` with `args` appended to its command line. A lone program is first copied into
    `folder`, so that a web server running as another user can still execute it."""
    argv = app.argv
    if len(argv) == 1:
        copy = folder / f"{Path(argv[0]).name}-bin"
        shutil.copyfile(argv[0], copy)
        copy.chmod(0o755)
        argv = (str(copy),)
    return dataclasses.replace(app, argv=(*argv, *args))


def streaming_location(prefix: str, fastcgi_pass: str) -> str:
    """Like `nginx.location`, but nginx streams the request body to the app as it arrives
    (no temporary file, no size limit) and the response to the client as it comes."""
    return f"""\
        location {prefix}/ {{
            fastcgi_split_path_info ^({prefix})(/.*)$;
{nginx.FASTCGI_PARAMS}            fastcgi_request_buffering off;
            fastcgi_buffering off;
            client_max_body_size 0;
            fastcgi_read_timeout 300s;
            fastcgi_send_timeout 300s;
            fastcgi_pass {fastcgi_pass};
        }}
"""


@contextmanager
def nginx_streaming(app: App, workdir: Path) -> Iterator[Front]:
    socket = workdir / "app.sock"
    locations = streaming_location("/app", nginx.target(socket))
    with (
        Backend(app, socket, workdir) as backend,
        nginx.Nginx(workdir, free_port(), "", locations) as server,
    ):
        yield Front("nginx-streaming", app, "/app", server, [backend])


def recycling_site(workdir: Path, docroot: Path, max_requests: int) -> str:
    """`apache.fcgid_site` with `FcgidMaxRequestsPerProcess` set (a later directive wins), and
    mod_fcgid's own brakes on recycling loosened, which only slow the test down: every exit and
    spawn raises a score that holds spawns back once it passes 10, and a process that has
    exited keeps its slot (of 8) until the next scan, so requests wait seconds for one."""
    return apache.fcgid_site(workdir, docroot) + (
        f"FcgidMaxRequestsPerProcess {max_requests}\n"
        "FcgidSpawnScoreUpLimit 100000\n"
        "FcgidTerminationScore 0\n"
        "FcgidMaxProcesses 64\n"
        "FcgidMaxProcessesPerClass 64\n"
        "FcgidErrorScanInterval 1\n"
    )


@contextmanager
def apache_fcgid_recycling(app: App, workdir: Path, max_requests: int) -> Iterator[Front]:
    """mod_fcgid recycles each app process after `max_requests` requests, and the app, started
    with `--max-requests` as well, exits on its own after as many."""
    docroot = workdir / "docroot"
    docroot.mkdir(exist_ok=True)
    with_args(app, docroot, "--max-requests", str(max_requests)).install(docroot / "app.fcgi")
    site = recycling_site(workdir, docroot, max_requests)
    with apache.Apache(workdir, free_port(), ("fcgid",), site) as server:
        yield Front("apache-fcgid-recycling", app, "/app.fcgi", server)

"""HAProxy in the foreground, the one web server that multiplexes FastCGI requests on a connection.

One frontend on a loopback port, one backend with one FastCGI server (`proto fcgi`) and a
`fcgi-app` section: `option keep-conn`, `option mpxs-conns`, `option max-reqs N`, and
`option get-values`, so HAProxy asks the app (FCGI_GET_VALUES) whether it multiplexes and how
many requests it takes at once. `http-reuse always` lets every client connection share the
FastCGI connections HAProxy has open (the default, `safe`, keeps a multiplexed connection for
the streams of one client connection).
"""

from __future__ import annotations

from pathlib import Path

from .net import LOOPBACK, Address
from .process import Process
from .service import WebServer

BINARY = "/usr/sbin/haproxy"

# `log stderr`: HAProxy's log (requests and the app's FCGI_STDERR, `log-stderr global`) goes to
# its output, which the harness keeps as the server's log.
CONFIG = """\
global
    log stderr format raw local0 info
    nbthread 2

defaults
    mode http
    log global
    option httplog
    timeout connect 5s
    timeout client 120s
    timeout server 120s
    http-reuse always

frontend web
    bind {host}:{port}
    default_backend fcgi

backend fcgi
    use-fcgi-app app
    server s1 {server} proto fcgi

fcgi-app app
    docroot {docroot}
    log-stderr global
    option keep-conn
    {get_values}
    option mpxs-conns
    option max-reqs {max_reqs}
    path-info ^({prefix})(/.*)$
"""


def target(address: Address) -> str:
    """An address as HAProxy spells it on a `server` line."""
    if isinstance(address, Path):
        return f"unix@{address}"
    host, port = address
    return f"{host}:{port}"


class HAProxy(WebServer):
    """`haproxy -db -f CONF`: every request under `prefix/` to one FastCGI server, with
    SCRIPT_NAME the prefix and PATH_INFO the rest (`path-info`)."""

    def __init__(self, workdir: Path, port: int, server: Address, prefix: str, max_reqs: int, get_values: bool):
        self.address = (LOOPBACK, port)
        self.config = workdir / "haproxy.cfg"
        docroot = workdir / "docroot"
        docroot.mkdir(exist_ok=True)
        self.config.write_text(
            CONFIG.format(
                host=LOOPBACK,
                port=port,
                server=target(server),
                docroot=docroot,
                max_reqs=max_reqs,
                get_values="option get-values" if get_values else "no option get-values",
                prefix=prefix,
            )
        )
        self.process = Process("haproxy", [BINARY, "-db", "-f", self.config], log=workdir / "haproxy.log")
        self.error_log = self.process.log

    def logs(self) -> dict[str, Path]:
        return {"haproxy log (requests, the app's stderr)": self.process.log}

"""The web-server side of the matrix: each front is one server in one FastCGI (or CGI) mode.

`FRONTS` is the matrix; other builders here serve the lifecycle tests.

A front builder takes an app and an empty, world-readable work directory, starts whatever it
needs (the server, and the app itself when the server does not spawn it) and yields a `Front`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path

from . import apache, fcgi_tap, haproxy, lighttpd, nginx
from .apps import App
from .backend import Backend
from .logs import tail
from .net import LOOPBACK, free_port
from .service import WebServer


@dataclass(repr=False)
class Front:
    """A running web server in front of an app, as the tests see it."""

    name: str
    app: App
    prefix: str
    """The URL path the app is mounted on: requests go to `prefix + route`."""
    server: WebServer
    backends: list[Backend] = field(default_factory=list)
    """Apps the harness started itself; empty when the server spawns the app."""
    keeps_connections: bool = False
    """The server reuses FastCGI connections (KEEP_CONN), so /stats counts few connections."""
    sends_path_info: bool = True
    """The server splits the URL into SCRIPT_NAME (the prefix) and PATH_INFO (decoded)."""
    tap: fcgi_tap.FcgiTap | None = None
    """The relay between server and app that records request ids per connection, if any."""

    @property
    def host(self) -> str:
        return self.server.address[0]

    @property
    def port(self) -> int:
        return self.server.address[1]

    def __repr__(self) -> str:
        return f"<{self.name} on {self.host}:{self.port}{self.prefix} → {self.app.name}>"

    def url(self, route: str) -> str:
        return self.prefix + route

    def logs(self) -> dict[str, Path]:
        every = dict(self.server.logs())
        for backend in self.backends:
            every.update(backend.logs())
        return every

    def diagnostics(self) -> list[tuple[str, str]]:
        """(title, text) sections that tell why a test against this front failed."""
        return [(f"{self.name}: {label} ({path})", tail(path)) for label, path in self.logs().items()]


FrontBuilder = Callable[[App, Path], AbstractContextManager[Front]]


def _docroot(workdir: Path) -> Path:
    docroot = workdir / "docroot"
    docroot.mkdir(exist_ok=True)
    return docroot


@contextmanager
def apache_fcgid(app: App, workdir: Path) -> Iterator[Front]:
    docroot = _docroot(workdir)
    app.install(docroot / "app.fcgi")
    port = free_port()
    with apache.Apache(workdir, port, ("fcgid",), apache.fcgid_site(workdir, docroot)) as server:
        yield Front("apache-fcgid", app, "/app.fcgi", server)


@contextmanager
def apache_cgi(app: App, workdir: Path) -> Iterator[Front]:
    docroot = _docroot(workdir)
    app.install(docroot / "app.cgi")
    port = free_port()
    with apache.Apache(workdir, port, ("cgi",), apache.cgi_site(docroot)) as server:
        yield Front("apache-cgi", app, "/app.cgi", server)


@contextmanager
def apache_proxy_fcgi(app: App, workdir: Path) -> Iterator[Front]:
    backend_address = (LOOPBACK, free_port())
    port = free_port()
    site = apache.proxy_fcgi_site("/app", backend_address)
    with (
        Backend(app, backend_address, workdir) as backend,
        apache.Apache(workdir, port, ("proxy", "proxy_fcgi"), site) as server,
    ):
        yield Front("apache-proxy-fcgi", app, "/app", server, [backend], sends_path_info=False)


def _nginx(name: str, prefix: str, keeps_connections: bool) -> FrontBuilder:
    """One nginx config with two locations onto the same app: `/app` opens a FastCGI
    connection per request, `/ka` keeps them open in an upstream keepalive pool."""

    @contextmanager
    def build(app: App, workdir: Path) -> Iterator[Front]:
        socket = workdir / "app.sock"
        port = free_port()
        upstreams = nginx.upstream("app_keepalive", [socket], keepalive=8)
        locations = nginx.location("/app", nginx.target(socket)) + nginx.location(
            "/ka", "app_keepalive", keep_conn=True
        )
        with (
            Backend(app, socket, workdir) as backend,
            nginx.Nginx(workdir, port, upstreams, locations) as server,
        ):
            yield Front(name, app, prefix, server, [backend], keeps_connections=keeps_connections)

    return build


@contextmanager
def lighttpd_spawn(app: App, workdir: Path) -> Iterator[Front]:
    program = app.install(_docroot(workdir) / "app.fcgi")
    port = free_port()
    backend = lighttpd.spawned(program, workdir / "app.sock")
    with lighttpd.Lighttpd(workdir, port, "/app", backend) as server:
        yield Front("lighttpd-spawn", app, "/app", server)


@contextmanager
def lighttpd_socket(app: App, workdir: Path) -> Iterator[Front]:
    socket = workdir / "app.sock"
    port = free_port()
    with (
        Backend(app, socket, workdir) as backend,
        lighttpd.Lighttpd(workdir, port, "/app", lighttpd.external(socket)) as server,
    ):
        yield Front("lighttpd-socket", app, "/app", server, [backend])


@contextmanager
def nginx_two_backends(app: App, workdir: Path) -> Iterator[Front]:
    """nginx balancing one location over two app processes on TCP; when one fails, nginx
    retries the request on the other (`fastcgi_next_upstream error timeout`)."""
    addresses = [(LOOPBACK, free_port()), (LOOPBACK, free_port())]
    upstreams = nginx.upstream("pair", addresses)
    with (
        Backend(app, addresses[0], workdir, name="app1") as first,
        Backend(app, addresses[1], workdir, name="app2") as second,
        nginx.Nginx(workdir, free_port(), upstreams, nginx.location("/app", "pair")) as server,
    ):
        yield Front("nginx-two-backends", app, "/app", server, [first, second])


FRONTS: dict[str, FrontBuilder] = {
    "apache-fcgid": apache_fcgid,
    "apache-cgi": apache_cgi,
    "apache-proxy-fcgi": apache_proxy_fcgi,
    "nginx": _nginx("nginx", "/app", keeps_connections=False),
    "nginx-keepalive": _nginx("nginx-keepalive", "/ka", keeps_connections=True),
    "lighttpd-spawn": lighttpd_spawn,
    "lighttpd-socket": lighttpd_socket,
}


@contextmanager
def haproxy_multiplexed(
    app: App,
    workdir: Path,
    *,
    workers: int = 2,
    multiplex: int = 8,
    max_reqs: int = 8,
    tap: bool = True,
    get_values: bool = True,
) -> Iterator[Front]:
    """HAProxy multiplexing requests onto FastCGI connections to one app process started with
    `--workers W --multiplex M`; with `tap`, a `FcgiTap` between them records which request ids
    travel on which connection (`front.tap`)."""
    socket = workdir / "app.sock"
    tapped = workdir / "tap.sock"
    multiplexing = dataclasses.replace(app, argv=(*app.argv, "--workers", str(workers), "--multiplex", str(multiplex)))
    with (
        Backend(multiplexing, socket, workdir) as backend,
        fcgi_tap.FcgiTap(tapped, socket) if tap else nullcontext() as tap,
        haproxy.HAProxy(workdir, free_port(), tapped if tap else socket, "/app", max_reqs, get_values) as server,
    ):
        yield Front("haproxy", app, "/app", server, [backend], keeps_connections=True, tap=tap)

"""lighttpd in the foreground with mod_fastcgi: the app spawned by lighttpd, or external, as a
responder or as an authorizer."""

from __future__ import annotations

from pathlib import Path

from .net import LOOPBACK
from .process import Process
from .service import WebServer

BINARY = "/usr/sbin/lighttpd"

CONFIG = """\
server.modules = ({modules})
server.document-root = "{docroot}"
server.bind = "{host}"
server.port = {port}
server.errorlog = "{error_log}"
server.upload-dirs = ("{upload}")
fastcgi.server = (
{routes})
{settings}"""

ROUTE = """\
    "{prefix}" => ((
        {backend},
        "check-local" => "disable",
    )),
"""


def spawned(program: Path, socket: Path) -> str:
    """lighttpd starts `program` itself, with a listening socket on fd 0 (`bin-path`)."""
    return f'"bin-path" => "{program}", "socket" => "{socket}", "max-procs" => 1'


def external(socket: Path) -> str:
    """The app was started by the harness and listens on `socket`."""
    return f'"socket" => "{socket}"'


def authorizer(backend: str, docroot: Path) -> str:
    """`backend` as an authorizer: a request it allows (200) is then served from `docroot` by
    whatever serves that path (static files, mod_cgi), its Variable-* headers in the environment."""
    return f'{backend}, "mode" => "authorizer", "docroot" => "{docroot}"'


class Lighttpd(WebServer):
    """`lighttpd -D -f CONF`, passing `prefix/...` to one FastCGI backend, and each prefix of
    `more` to its own; `modules` are loaded beside mod_fastcgi, `settings` are more config lines."""

    def __init__(
        self,
        workdir: Path,
        port: int,
        prefix: str,
        backend: str,
        *,
        more: dict[str, str] | None = None,
        modules: tuple[str, ...] = (),
        settings: str = "",
    ):
        self.address = (LOOPBACK, port)
        self.error_log = workdir / "error.log"
        self.config = workdir / "lighttpd.conf"
        docroot = workdir / "docroot"
        upload = workdir / "upload"
        docroot.mkdir(exist_ok=True)
        upload.mkdir(exist_ok=True)
        self.config.write_text(
            CONFIG.format(
                docroot=docroot,
                host=LOOPBACK,
                port=port,
                error_log=self.error_log,
                upload=upload,
                modules=", ".join(f'"{name}"' for name in ("mod_fastcgi", *modules)),
                routes="".join(ROUTE.format(prefix=p, backend=b) for p, b in {prefix: backend, **(more or {})}.items()),
                settings=settings,
            )
        )
        self.process = Process("lighttpd", [BINARY, "-D", "-f", self.config], log=workdir / "lighttpd.out.log")

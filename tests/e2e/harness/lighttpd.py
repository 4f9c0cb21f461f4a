"""lighttpd in the foreground with mod_fastcgi: the app spawned by lighttpd, or external."""

from __future__ import annotations

from pathlib import Path

from .net import LOOPBACK
from .process import Process
from .service import WebServer

BINARY = "/usr/sbin/lighttpd"

CONFIG = """\
server.modules = ("mod_fastcgi")
server.document-root = "{docroot}"
server.bind = "{host}"
server.port = {port}
server.errorlog = "{error_log}"
server.upload-dirs = ("{upload}")
fastcgi.server = (
    "{prefix}" => ((
        {backend},
        "check-local" => "disable",
    )),
)
"""


def spawned(program: Path, socket: Path) -> str:
    """lighttpd starts `program` itself, with a listening socket on fd 0 (`bin-path`)."""
    return f'"bin-path" => "{program}", "socket" => "{socket}", "max-procs" => 1'


def external(socket: Path) -> str:
    """The app was started by the harness and listens on `socket`."""
    return f'"socket" => "{socket}"'


class Lighttpd(WebServer):
    """`lighttpd -D -f CONF`, passing `prefix/...` to one FastCGI backend."""

    def __init__(self, workdir: Path, port: int, prefix: str, backend: str):
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
                prefix=prefix,
                backend=backend,
            )
        )
        self.process = Process("lighttpd", [BINARY, "-D", "-f", self.config], log=workdir / "lighttpd.out.log")

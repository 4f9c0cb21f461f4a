"""An app started by the harness itself, listening on an address (`APP --bind ADDR`)."""

from __future__ import annotations

from pathlib import Path

from .apps import App
from .net import Address, bind_arg
from .process import Process
from .service import Service


class Backend(Service):
    """The app as an external FastCGI server, for nginx, lighttpd "socket" and mod_proxy_fcgi.

    Its stderr goes to `NAME.stderr.log` in the work directory.
    """

    def __init__(self, app: App, address: Address, workdir: Path, name: str = "app"):
        self.app = app
        self.address = address
        self.process = Process(
            f"{app.name} --bind {bind_arg(address)}",
            app.command("--bind", bind_arg(address)),
            log=workdir / f"{name}.stderr.log",
            cwd=workdir,
        )

    def logs(self) -> dict[str, Path]:
        return {f"{self.app.name} stderr ({bind_arg(self.address)})": self.process.log}

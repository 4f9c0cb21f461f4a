"""Apache httpd in the foreground with a self-contained config: mod_fcgid, mod_cgi, mod_proxy_fcgi.

Apache starts as root and its children run as www-data, so everything they read or execute
lives under the world-readable work directory (never under /root).
"""

from __future__ import annotations

import signal
from pathlib import Path

from .net import LOOPBACK, Address
from .process import Process
from .service import WebServer

BINARY = "/usr/sbin/apache2"
MODULES = Path("/usr/lib/apache2/modules")
BASE_MODULES = ("mpm_event", "authz_core", "mime")

BASE_CONFIG = """\
ServerRoot "{workdir}"
ServerName {host}
Listen {host}:{port}
PidFile "{workdir}/apache.pid"
DefaultRuntimeDir "{workdir}/run"
ErrorLog "{error_log}"
LogLevel info
User www-data
Group www-data
TypesConfig /dev/null
Timeout 120
KeepAlive On
StartServers 2
ServerLimit 4
ThreadsPerChild 32
MaxRequestWorkers 128
{load_modules}
<Directory "/">
    AllowOverride None
    Require all denied
</Directory>
{site}
"""


class Apache(WebServer):
    """`apache2 -f CONF -DFOREGROUND`, serving `site` (config text at server level)."""

    def __init__(self, workdir: Path, port: int, modules: tuple[str, ...], site: str):
        self.address = (LOOPBACK, port)
        self.error_log = workdir / "error.log"
        self.config = workdir / "apache2.conf"
        (workdir / "run").mkdir(exist_ok=True)
        load = "\n".join(f"LoadModule {name}_module {MODULES}/mod_{name}.so" for name in (*BASE_MODULES, *modules))
        self.config.write_text(
            BASE_CONFIG.format(
                workdir=workdir,
                host=LOOPBACK,
                port=port,
                error_log=self.error_log,
                load_modules=load,
                site=site,
            )
        )
        self.process = Process("apache2", [BINARY, "-f", self.config, "-DFOREGROUND"], log=workdir / "apache2.out.log")

    def graceful(self) -> None:
        """What `apache2 -k graceful` does: SIGUSR1 to the parent."""
        self.process.signal(signal.SIGUSR1)


def docroot_site(docroot: Path, handler: str) -> str:
    """A docroot whose scripts run through `handler` (e.g. `fcgid-script .fcgi`)."""
    return f"""\
DocumentRoot "{docroot}"
<Directory "{docroot}">
    Options +ExecCGI
    AddHandler {handler}
    Require all granted
</Directory>
"""


def fcgid_site(workdir: Path, docroot: Path, extension: str = ".fcgi", env: dict[str, str] | None = None) -> str:
    """mod_fcgid: it spawns `*.fcgi` (or `*EXTENSION`) with a listening Unix socket on fd 0.

    Requests may be as large as the tests send; processes live forever (no recycling), and up
    to 8 of them serve concurrent requests, each one request at a time; the rest queue. `env`
    goes into the environment of the processes it spawns (`FcgidInitialEnv`): `SetEnv` would
    only reach each request's params, after the app has started.
    """
    initial_env = "".join(f'FcgidInitialEnv {name} "{value}"\n' for name, value in (env or {}).items())
    return f"""\
FcgidIPCDir "{workdir}/fcgid"
FcgidProcessTableFile "{workdir}/fcgid/shm"
FcgidMaxRequestLen 1073741824
FcgidMaxRequestsPerProcess 0
FcgidIOTimeout 120
FcgidBusyTimeout 300
FcgidMaxProcesses 8
FcgidMaxProcessesPerClass 8
{initial_env}{docroot_site(docroot, f"fcgid-script {extension}")}"""


def authorizer_site(folder: Path, authorizer: Path, handler: str) -> str:
    """`folder` (inside an fcgid_site's docroot) guarded by the FastCGI authorizer `authorizer`,
    which mod_fcgid runs; its scripts run through `handler` (e.g. `cgi-script .sh`).

    FcgidAccessChecker, not FcgidAuthorizer: on Apache 2.4 mod_fcgid's authorizer hook runs only
    after an authentication module has named a user (`Require valid-user`), while the access
    checker runs for every request. Both speak the FastCGI Authorizer role; the app sees
    FCGI_APACHE_ROLE=ACCESS_CHECKER instead of AUTHORIZER.
    """
    return f"""\
<Directory "{folder}">
    FcgidAccessChecker "{authorizer}"
    AddHandler {handler}
</Directory>
"""


def cgi_site(docroot: Path, env: dict[str, str] | None = None) -> str:
    """mod_cgi: the very same program as `*.cgi`, one process per request.

    `env` is added to each CGI's environment with `SetEnv` (needs the `env` module).
    """
    site = docroot_site(docroot, "cgi-script .cgi")
    set_env = "".join(f'SetEnv {name} "{value}"\n' for name, value in (env or {}).items())
    return site + set_env


def proxy_fcgi_site(prefix: str, backend: Address) -> str:
    """mod_proxy_fcgi: forwards `prefix/` to an app the harness started."""
    if isinstance(backend, Path):
        target = f"unix:{backend}|fcgi://localhost/"
    else:
        host, port = backend
        target = f"fcgi://{host}:{port}/"
    return f'ProxyPass "{prefix}/" "{target}"\n'

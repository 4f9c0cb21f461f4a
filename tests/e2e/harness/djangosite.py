"""The Django example site (examples/django) behind each server, deployed the way its users would.

- Apache mod_fcgid and mod_cgi run the very same `django.cgi`: `AddHandler fcgid-script .cgi`
  or `AddHandler cgi-script .cgi` alone decides FastCGI or CGI. Its `#!/usr/bin/env python3`
  finds Debian's /usr/bin/python3 on Apache's PATH (www-data cannot enter pyenv's /root).
- nginx (the README's snippet: the site at `/`) and lighttpd (at `/django`) pass requests to
  `python -m fcgi_wsgi demo_site.wsgi --chdir SITE --bind unix:SOCK`, started by the harness.

The packages (fcgi_wsgi from our wheel, Django) reach the app on PYTHONPATH: `FcgidInitialEnv`
under mod_fcgid, `SetEnv` under mod_cgi, the command line's `env` otherwise.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path

from . import apache, lighttpd, nginx, pythonpath
from .apps import REPO, App
from .backend import Backend
from .fronts import Front
from .net import free_port

SOURCE = REPO / "examples/django"
NAME = "django"
"""The site's name among the apps (`--app django`)."""
USER = ("alice", "fcgi-e2e-not-secret")
"""The site's one user, and the password that logs it in."""


@dataclass(frozen=True)
class Site:
    folder: Path
    """A world-readable copy of examples/django: `django.cgi` and `demo_site/`."""
    pythonpath: tuple[Path, ...]
    """Folders holding fcgi_wsgi and Django, for Debian's Python."""

    @property
    def env(self) -> dict[str, str]:
        """What the app's environment needs beyond what the server gives it."""
        return {"PYTHONPATH": os.pathsep.join(map(str, self.pythonpath))}

    def app(self, *flags: str, env: dict[str, str] | None = None) -> App:
        """The site as a FastCGI server with `flags` and `env` added: `--bind ADDR` is appended
        when it is started."""
        args = ("-m", "fcgi_wsgi", "demo_site.wsgi", "--chdir", str(self.folder), *flags)
        program, *rest = pythonpath.command(self.pythonpath, *args)
        return App(NAME, argv=(program, *(f"{name}={value}" for name, value in (env or {}).items()), *rest))


def install(workroot: Path) -> Site:
    """Build and unpack fcgi_wsgi, install Django, copy the site: all readable by www-data. The
    site's database gets its tables and the user `USER`, and belongs to www-data, which writes
    to it when someone logs in."""
    packages = (pythonpath.fcgi_wsgi(REPO, workroot), pythonpath.django(workroot))
    folder = Path(tempfile.mkdtemp(prefix="django-site-", dir=workroot))
    folder.chmod(0o755)
    shutil.copytree(SOURCE, folder, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__", "var"))
    site = Site(folder, packages)
    (folder / "var").mkdir()
    manage = pythonpath.command(packages, str(folder / "manage.py"))
    pythonpath.run([*manage, "migrate", "--noinput"])
    name, password = USER
    superuser = ["createsuperuser", "--noinput", "--username", name, "--email", f"{name}@example.org"]
    pythonpath.run(["/usr/bin/env", f"DJANGO_SUPERUSER_PASSWORD={password}", *manage, *superuser])
    for path in [folder / "var", *(folder / "var").iterdir()]:
        shutil.chown(path, "www-data", "www-data")
    return site


SiteFrontBuilder = Callable[[Site, Path], AbstractContextManager[Front]]


@contextmanager
def apache_fcgid(site: Site, workdir: Path) -> Iterator[Front]:
    config = apache.fcgid_site(workdir, site.folder, ".cgi", site.env)
    with apache.Apache(workdir, free_port(), ("fcgid",), config) as server:
        yield Front("apache-fcgid", site.app(), "/django.cgi", server)


@contextmanager
def apache_cgi(site: Site, workdir: Path) -> Iterator[Front]:
    config = apache.cgi_site(site.folder, site.env)
    with apache.Apache(workdir, free_port(), ("cgi", "env"), config) as server:
        yield Front("apache-cgi", site.app(), "/django.cgi", server)


@contextmanager
def nginx_root(site: Site, workdir: Path, app: App | None = None) -> Iterator[Front]:
    """nginx in front of the site, served by `app` (one of `site.app(...)`; default: plain)."""
    socket = workdir / "django.sock"
    app = app or site.app()
    upstreams = nginx.upstream("django", [socket], keepalive=8)
    with (
        Backend(app, socket, workdir) as backend,
        nginx.Nginx(workdir, free_port(), upstreams, nginx.root_location("django", keep_conn=True)) as server,
    ):
        yield Front("nginx", app, "", server, [backend], keeps_connections=True)


@contextmanager
def lighttpd_socket(site: Site, workdir: Path) -> Iterator[Front]:
    socket = workdir / "django.sock"
    with (
        Backend(site.app(), socket, workdir) as backend,
        lighttpd.Lighttpd(workdir, free_port(), "/django", lighttpd.external(socket)) as server,
    ):
        yield Front("lighttpd-socket", site.app(), "/django", server, [backend])


FRONTS: dict[str, SiteFrontBuilder] = {
    "apache-fcgid": apache_fcgid,
    "apache-cgi": apache_cgi,
    "nginx": nginx_root,
    "lighttpd-socket": lighttpd_socket,
}

"""Shared hosting with Apache suexec: per-user Django sites under `/~user/`, each run as its user.

Debian's `apache2-suexec-pristine` installs `/usr/lib/apache2/suexec` (setuid root, runnable by
www-data only). Apache, started as root, finds it and then runs every CGI or mod_fcgid program
of a `/~user/` request (mod_userdir) through it: `suexec ~UID GROUP PROGRAM`. suexec switches to
the user, but only after its own checks, each compiled in (`suexec -V`) and each refusal a line
in its log (`AP_LOG_EXEC`, /var/log/apache2/suexec.log):

- the program must lie under the user's home + `AP_USERDIR_SUFFIX` (public_html) for `~user`
  requests (`AP_DOC_ROOT`, /var/www, for the others);
- it and its folder must belong to the user and the user's group and be writable by nobody else;
- the user's uid and gid must be at least `AP_UID_MIN` and `AP_GID_MIN`;
- the environment is cut down to the CGI variables (HTTP_*, PATH_INFO, SCRIPT_NAME, ...) and
  `PATH=AP_SAFE_PATH`: PYTHONPATH, HOME, and whatever `FcgidInitialEnv` or `SetEnv` set, are gone.

So `tenants()` creates two users whose `~/public_html/django/django.cgi` finds fcgi_wsgi and
Django without PYTHONPATH, in the two ways a user can:

- `user-site`: the packages in the user's own `~/.local/lib/pythonX.Y/site-packages`, as
  `pip install --user` puts them; Python finds that folder by itself (without HOME, from the
  password database), and `django.cgi` is examples/django/django.cgi unchanged;
- `shared`: the packages in a world-readable folder the host provides, named in `django.cgi`
  with `site.addsitedir()`.

The users are created with `useradd` under unique names and removed with their homes at the end.
"""

from __future__ import annotations

import grp
import os
import pwd
import re
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from . import apache, djangosite, pythonpath
from .logs import tail
from .net import free_port

SUEXEC = Path("/usr/lib/apache2/suexec")
PACKAGE = "apache2-suexec-pristine"
# apache2-suexec-custom reads its docroot and userdir suffix from here (first two lines).
CUSTOM_CONFIG = Path("/etc/apache2/suexec/www-data")
USERDIR_MODULES = ("userdir", "rewrite")
# The seed's rule, as written: /~user/django/REST runs ~user's django.cgi with PATH_INFO /REST.
REWRITE_RULE = "RewriteRule ^/(~[^/]+)/django/(.*)$ /$1/django/django.cgi/$2 [PT]"
HANDLERS = {"apache-fcgid": ("fcgid", "fcgid-script .cgi"), "apache-cgi": ("cgi", "cgi-script .cgi")}
"""front name → (Apache module, AddHandler arguments)."""

# How to break each rule suexec checks before it runs a program, and what it logs then.
REFUSALS = {
    "group-writable-program": "file is writable by others",
    "group-writable-folder": "directory is writable by others",
    "program-of-another-user": "mismatch with directory",
}
ENV_CGI = """\
#!/bin/sh
printf 'Content-Type: text/plain\\r\\n\\r\\n'
env
"""


class SuexecMissing(RuntimeError):
    """suexec is not installed (or not setuid root)."""


def compiled_rules(binary: Path = SUEXEC) -> dict[str, str]:
    """What `suexec -V` prints (`-D AP_DOC_ROOT="/var/www"`, ...), as a dict (root may ask)."""
    if not binary.exists():
        raise SuexecMissing(f"{binary} does not exist: install {PACKAGE} (bash tests/install-deps.sh)")
    if not binary.stat().st_mode & 0o4000:
        raise SuexecMissing(f"{binary} is not setuid: Apache would not use it")
    done = subprocess.run([binary, "-V"], check=False, capture_output=True, text=True)
    text = done.stdout + done.stderr
    rules = {name: value.strip('"') for name, value in re.findall(r"-D (\w+)=(\S+)", text)}
    if not rules:
        raise SuexecMissing(f"`{binary} -V` printed no rules:\n{text}")
    if "custom" in binary.resolve().name and CUSTOM_CONFIG.exists():
        lines = [line.strip() for line in CUSTOM_CONFIG.read_text().splitlines() if not line.startswith("#")]
        rules.update(zip(("AP_DOC_ROOT", "AP_USERDIR_SUFFIX"), lines))
    return rules


@dataclass(frozen=True)
class User:
    name: str
    uid: int
    gid: int
    home: Path
    packages: str
    """How its django.cgi finds fcgi_wsgi and Django: `user-site` or `shared`."""

    @property
    def public_html(self) -> Path:
        return self.home / "public_html"

    @property
    def site(self) -> Path:
        return self.public_html / "django"

    @property
    def prefix(self) -> str:
        """The site's URL: what Django takes for SCRIPT_NAME."""
        return f"/~{self.name}/django"


@dataclass
class Tenants:
    """Users of a shared host, each with a Django site in ~/public_html/django."""

    users: list[User]
    rules: dict[str, str]
    """`suexec -V`."""
    log: Path
    """suexec's log, shared by everything on this machine: read the lines that name our users."""
    log_start: int = 0
    """The log's size when the users were created: older lines are not about them."""
    refused: dict[str, Path] = field(default_factory=dict)
    """A program suexec must refuse, per rule broken (REFUSALS), in the first user's public_html."""

    def log_size(self) -> int:
        """Where suexec's next log line will start: see `log_since`."""
        try:
            return self.log.stat().st_size
        except FileNotFoundError:
            return 0

    def log_since(self, offset: int) -> list[str]:
        """suexec's log lines written after `offset` (`log_size()` before a request)."""
        try:
            with open(self.log, "rb") as f:
                f.seek(offset)
                return f.read().decode("utf-8", "backslashreplace").splitlines()
        except FileNotFoundError:
            return []

    def log_lines(self) -> list[str]:
        """The log lines that name our users or their uids."""
        needles = [user.name for user in self.users] + [f"({user.uid}/" for user in self.users]
        return [line for line in self.log_since(self.log_start) if any(needle in line for needle in needles)]

    def listing(self) -> str:
        """Owner, group and mode of every file and folder suexec looks at."""
        lines = []
        for user in self.users:
            for path in [user.home, user.public_html, *sorted(user.public_html.rglob("*"))]:
                if "__pycache__" in path.parts:
                    continue
                try:
                    st = path.lstat()
                except OSError:
                    continue
                owner = f"{_user_name(st.st_uid)}:{_group_name(st.st_gid)}"
                lines.append(f"{st.st_mode & 0o7777:04o} {owner:<24} {path}")
        return "\n".join(lines)


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def _run(*argv: str | Path) -> None:
    done = subprocess.run([str(a) for a in argv], check=False, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"$ {' '.join(map(str, argv))}: exit {done.returncode}\n{done.stdout}{done.stderr}")


def _python_version() -> str:
    done = subprocess.run(
        [pythonpath.PYTHON, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
        check=True,
        capture_output=True,
        text=True,
    )
    return done.stdout.strip()


def create_user(name: str, packages: str) -> User:
    _run("useradd", "--create-home", "--home-dir", f"/home/{name}", "--shell", "/usr/sbin/nologin", name)
    entry = pwd.getpwnam(name)
    home = Path(entry.pw_dir)
    home.chmod(0o711)  # Apache (www-data) walks through to public_html; lists nothing
    return User(name, entry.pw_uid, entry.pw_gid, home, packages)


def processes_of(uid: int) -> list[int]:
    """The pids of the processes running as `uid` (real uid)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
        except OSError:
            continue
        match = re.search(r"^Uid:\s+(\d+)", status, re.MULTILINE)
        if match and int(match[1]) == uid:
            pids.append(int(entry.name))
    return pids


def environment_of(pid: int) -> dict[str, str]:
    """The environment `pid` was started (exec'ed) with."""
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    pairs = [item.decode("utf-8", "backslashreplace").partition("=") for item in raw.split(b"\0") if item]
    return {name: value for name, _, value in pairs}


def remove_user(user: User) -> None:
    """userdel --remove, once the processes Apache started as the user are gone."""
    deadline = time.monotonic() + 10
    while (pids := processes_of(user.uid)) and time.monotonic() < deadline:
        time.sleep(0.1)
    for pid in pids:  # outlived Apache's stop: ours all the same (the user is ours)
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    # It complains when the user has no mail spool: what counts is that the user is gone.
    subprocess.run(["userdel", "--remove", user.name], check=False, capture_output=True)
    try:
        pwd.getpwnam(user.name)
    except KeyError:
        return
    _run("userdel", "--force", "--remove", user.name)


def _owned(user: User, *paths: Path) -> None:
    for path in paths:
        _run("chown", "-R", f"{user.uid}:{user.gid}", path)


def _copy_site(dest: Path, cgi_text: str) -> None:
    """examples/django's demo_site and a django.cgi, with the modes suexec accepts."""
    dest.mkdir(parents=True)
    shutil.copytree(djangosite.SOURCE / "demo_site", dest / "demo_site", ignore=shutil.ignore_patterns("__pycache__"))
    (dest / "django.cgi").write_text(cgi_text)
    for path in [dest, *dest.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    (dest / "django.cgi").chmod(0o755)


def shared_cgi(folders: tuple[Path, ...]) -> str:
    """examples/django/django.cgi naming the host's package folders itself (no PYTHONPATH)."""
    text = (djangosite.SOURCE / "django.cgi").read_text()
    lines = "".join(f'site.addsitedir("{folder}")\n' for folder in folders)
    anchor = "import sys\n"
    assert anchor in text, f"no {anchor!r} in examples/django/django.cgi"
    comment = "# suexec drops PYTHONPATH: the host's packages, named here.\n"
    return text.replace(anchor, f"{anchor}import site\n\n{comment}{lines}", 1)


def install_site(user: User, site: djangosite.Site, python_version: str) -> None:
    """~user/public_html/django: django.cgi and demo_site, owned by the user, writable by the user only."""
    example = (djangosite.SOURCE / "django.cgi").read_text()
    if user.packages == "user-site":
        # What `pip install --user fcgi_wsgi django` leaves: the packages in the user's site folder.
        target = user.home / ".local/lib" / f"python{python_version}" / "site-packages"
        target.mkdir(parents=True)
        for folder in site.pythonpath:
            shutil.copytree(folder, target, dirs_exist_ok=True)
        _owned(user, user.home / ".local")
        cgi_text = example
    else:
        cgi_text = shared_cgi(site.pythonpath)
    user.public_html.mkdir(mode=0o755)
    _copy_site(user.site, cgi_text)
    env_cgi = user.public_html / "env.cgi"
    env_cgi.write_text(ENV_CGI)
    env_cgi.chmod(0o755)
    _owned(user, user.public_html)


def install_refused(owner: User, other: User) -> dict[str, Path]:
    """In `owner`'s public_html, one folder per rule of REFUSALS, with a django.cgi breaking it."""
    refused = {}
    for rule in REFUSALS:
        folder = owner.public_html / f"refused-{rule}"
        folder.mkdir(mode=0o755)
        program = folder / "django.cgi"
        program.write_text((djangosite.SOURCE / "django.cgi").read_text())
        program.chmod(0o755)
        _owned(owner, folder)
        if rule == "group-writable-program":
            program.chmod(0o775)
        elif rule == "group-writable-folder":
            folder.chmod(0o775)
        elif rule == "program-of-another-user":
            os.chown(program, other.uid, owner.gid)
        refused[rule] = program
    return refused


@contextmanager
def tenants(site: djangosite.Site) -> Iterator[Tenants]:
    """Two users (a unique prefix, then `alice` and `bob`), each with the Django site; removed at the end."""
    rules = compiled_rules()
    token = secrets.token_hex(3)
    log = Path(rules.get("AP_LOG_EXEC", "/var/log/apache2/suexec.log"))
    log_start = log.stat().st_size if log.exists() else 0
    users: list[User] = []
    try:
        version = _python_version()
        for role, packages in (("alice", "user-site"), ("bob", "shared")):
            user = create_user(f"e2e{token}-{role}", packages)
            users.append(user)
            install_site(user, site, version)
        yield Tenants(users, rules, log, log_start, install_refused(users[0], users[1]))
    finally:
        for user in users:
            remove_user(user)


def userdir_site(tenants: Tenants, handler: str) -> str:
    """mod_userdir for our users only, their public_html executable through `handler`, and the
    seed's RewriteRule (server context) mapping /~user/django/... onto django.cgi."""
    suffix = tenants.rules.get("AP_USERDIR_SUFFIX", "public_html")
    names = " ".join(user.name for user in tenants.users)
    folders = "".join(
        f"""\
<Directory "{user.home}/{suffix}">
    Options +ExecCGI
    AddHandler {handler}
    Require all granted
</Directory>
"""
        for user in tenants.users
    )
    return f"""\
UserDir {suffix}
UserDir disabled
UserDir enabled {names}
{folders}RewriteEngine On
{REWRITE_RULE}
"""


# What the README (and test_django.py) do without suexec to hand the packages over; suexec
# drops it, which the tests check. The marker tells whether anything of it got through.
DROPPED_ENV = {"PYTHONPATH": "/nonexistent/set-by-the-config", "FCGI_E2E_MARK": "set-by-the-config"}


@dataclass
class Hosting:
    """Apache (as root, suexec enabled) serving the tenants' sites through one handler."""

    name: str
    """`apache-fcgid` or `apache-cgi`."""
    tenants: Tenants
    server: apache.Apache

    @property
    def host(self) -> str:
        return self.server.address[0]

    @property
    def port(self) -> int:
        return self.server.address[1]

    def explain(self) -> str:
        """For assertion messages: suexec's log lines for our users, and the files it checks."""
        lines = "\n".join(self.tenants.log_lines()[-40:]) or "(no line names our users)"
        return f"\n--- {self.tenants.log} (our users) ---\n{lines}\n--- files ---\n{self.tenants.listing()}"

    def diagnostics(self) -> list[tuple[str, str]]:
        sections = [(f"{self.name}: {label} ({path})", tail(path)) for label, path in self.server.logs().items()]
        return [*sections, (f"{self.name}: suexec", self.explain())]


@contextmanager
def hosting(tenants: Tenants, name: str, workdir: Path) -> Iterator[Hosting]:
    """Apache with mod_userdir, mod_rewrite and `name`'s handler (HANDLERS) for the tenants."""
    if os.geteuid() != 0:
        raise RuntimeError("suexec needs Apache started as root")
    module, handler = HANDLERS[name]
    docroot = workdir / "docroot"
    docroot.mkdir()
    if module == "fcgid":
        site = apache.fcgid_site(workdir, docroot, ".fcgi", DROPPED_ENV)
        modules = (*USERDIR_MODULES, "fcgid")
    else:
        site = apache.cgi_site(docroot, DROPPED_ENV)
        modules = (*USERDIR_MODULES, "cgi", "env")
    config = site + userdir_site(tenants, handler)
    with apache.Apache(workdir, free_port(), modules, config) as server:
        yield Hosting(name, tenants, server)

"""The apps under test: command lines that honour the echo contract (tests/README.md).

Every face of the library (Rust, C, Python) ships an echo app; each one is registered here
once and then runs behind every web server of the matrix.
"""

from __future__ import annotations

import dataclasses
import shlex
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from . import pythonpath

REPO = Path(__file__).resolve().parents[3]


@dataclass(frozen=True)
class App:
    name: str
    argv: tuple[str, ...] = ()
    """The command line; the harness appends `--bind ADDR` when it starts the app itself."""
    build: tuple[str, ...] = ()
    """Run from the repository root once per session before the app is used (cheap when fresh)."""
    setup: Callable[[Path], tuple[str, ...]] | None = None
    """For an app whose command line depends on where it is installed: called once per session
    after `build` with the session's world-readable work root, puts the app there and returns
    its `argv`."""
    extra_routes: frozenset[str] = frozenset()
    """The optional routes of the echo contract that this app has (`fail`)."""

    def command(self, *args: str) -> list[str]:
        return [*self.argv, *args]

    def build_now(self, workroot: Path) -> App:
        """Build the app and set it up under `workroot`: the App to run."""
        if self.build:
            done = subprocess.run(self.build, check=False, cwd=REPO, capture_output=True, text=True)
            if done.returncode != 0:
                output = f"{done.stdout}{done.stderr}"
                raise RuntimeError(f"building {self.name} failed: $ {shlex.join(self.build)}\n{output}")
        if self.setup is None:
            return self
        try:
            argv = self.setup(workroot)
        except RuntimeError as e:
            raise RuntimeError(f"setting up {self.name} failed: {e}") from None
        return dataclasses.replace(self, argv=argv, setup=None)

    def install(self, dest: Path) -> Path:
        """Put an executable at `dest` that runs the app, for servers that spawn it themselves.

        A lone program is copied (servers may run it as another user, who cannot read the
        build tree); a longer command line gets a shell wrapper that execs it, so fd 0 and
        the environment reach the app untouched.
        """
        if len(self.argv) == 1:
            shutil.copyfile(self.argv[0], dest)
        else:
            dest.write_text(f'#!/bin/sh\nexec {shlex.join(self.argv)} "$@"\n')
        dest.chmod(0o755)
        return dest


def python_echo(workroot: Path) -> tuple[str, ...]:
    """tests/apps/wsgi_echo.py beside the fcgi_wsgi package from our wheel, served by Debian's
    Python (www-data can neither run pyenv's Python nor, on CI, read the checkout)."""
    folder = pythonpath.fcgi_wsgi(REPO, workroot)
    shutil.copy(REPO / "tests/apps/wsgi_echo.py", folder)
    # One process, as under mod_fcgid: the suites count a backend's workers, pid and counters.
    # Tests of a pool say --processes themselves; the default pool is tests/python/test_processes.py's.
    return pythonpath.command([folder], "-m", "fcgi_wsgi", "wsgi_echo:app", "--processes", "1")


def asgi_echo(workroot: Path) -> tuple[str, ...]:
    """tests/apps/asgi_echo.py, served the way python_echo is, as an ASGI app."""
    folder = pythonpath.fcgi_wsgi(REPO, workroot)
    shutil.copy(REPO / "tests/apps/asgi_echo.py", folder)
    return pythonpath.command([folder], "-m", "fcgi_wsgi", "--interface", "asgi", "asgi_echo:app")


REGISTRY: tuple[App, ...] = (
    App(
        name="rust-echo",
        argv=(str(REPO / "target/release/examples/echo"),),
        build=("cargo", "build", "--release", "-p", "fcgi-core", "--example", "echo"),
    ),
    App(name="python-echo", setup=python_echo, extra_routes=frozenset({"fail"})),
    App(name="asgi-echo", setup=asgi_echo, extra_routes=frozenset({"fail"})),
    # examples/c/echo.c linked statically against libfcgi_capi.a: a lone binary that Apache's
    # www-data can run from a copy, without reading the build tree.
    App(
        name="c-echo",
        argv=(str(REPO / "target/c-examples/echo-static"),),
        build=(
            "sh",
            "-c",
            "cargo build --release -q -p fcgi-capi && mkdir -p target/c-examples"
            " && cc -std=c11 -D_POSIX_C_SOURCE=200809L -O2 -Wall -Wextra -Werror -Iinclude examples/c/echo.c"
            " target/release/libfcgi_capi.a -pthread -ldl -lm -o target/c-examples/echo-static",
        ),
    ),
    # examples/compat/echo.c, written against libfcgi's fcgiapp.h, linked statically against
    # libfcgi_compat.a: a lone binary that Apache's www-data can run from a copy.
    App(
        name="compat-echo",
        argv=(str(REPO / "target/compat-examples/echo-static"),),
        build=(
            "sh",
            "-c",
            "cargo build --release -q -p fcgi-compat && mkdir -p target/compat-examples"
            " && cc -std=c11 -D_POSIX_C_SOURCE=200809L -O2 -Wall -Wextra -Werror -Iinclude/compat"
            " examples/compat/echo.c target/release/libfcgi_compat.a -pthread -ldl -lm"
            " -o target/compat-examples/echo-static",
        ),
    ),
)


def from_spec(spec: str) -> App:
    """An ad-hoc app from the command line: `NAME=COMMAND LINE` (see --app-cmd)."""
    name, sep, command = spec.partition("=")
    if not sep or not name or not command.strip():
        raise ValueError(f"--app-cmd wants NAME=COMMAND, got {spec!r}")
    return App(name=name, argv=tuple(shlex.split(command)))

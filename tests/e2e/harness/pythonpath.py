"""Python apps that www-data can run: Debian's interpreter, and packages in world-readable folders.

Apache's children run as www-data, which cannot enter /root, where pyenv's Python (the one that
runs the tests) lives. So Python apps run with Debian's `/usr/bin/python3` and import their
packages from folders under the session's world-readable work root, named on `PYTHONPATH`:

- `fcgi_wsgi(...)`: the package from this repository's abi3 wheel (`maturin build`), unzipped,
  as `pip install` would lay it out;
- `django(...)`: Django, installed with `pip install --target` for Debian's Python version.

Each is made once per work root (that is, once per session).
"""

from __future__ import annotations

import functools
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Sequence
from pathlib import Path

PYTHON = "/usr/bin/python3"
"""Debian's Python 3, which www-data can run (the wheel is abi3: any CPython 3.9+ imports it)."""
DJANGO = "django~=5.2.0"


def command(folders: Sequence[Path], *args: str) -> tuple[str, ...]:
    """`PYTHON args` with `folders` on PYTHONPATH, as one argv that every server can exec.

    `env NAME=VALUE` adds to the environment: under mod_cgi, where the environment is the
    request, every CGI variable still reaches the app; under mod_fcgid fd 0 is untouched.
    """
    return ("/usr/bin/env", "PYTHONPATH=" + os.pathsep.join(map(str, folders)), PYTHON, *args)


def run(argv: Sequence[str], cwd: Path | None = None) -> str:
    """Runs `argv`; its output, or a RuntimeError that shows it."""
    argv = list(argv)
    try:
        done = subprocess.run(argv, check=False, cwd=cwd, capture_output=True, text=True)
    except FileNotFoundError:
        raise RuntimeError(f"{argv[0]} is not installed") from None
    if done.returncode != 0:
        raise RuntimeError(f"$ {shlex.join(argv)}\n{done.stdout}{done.stderr}")
    return done.stdout


def _new_folder(workroot: Path, name: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=f"{name}-", dir=workroot))


def _world_readable(folder: Path) -> Path:
    """Every folder 0755 and every file at least 0644 (tools may create them 0700 or 0600)."""
    for path in [folder, *folder.rglob("*")]:
        if path.is_dir():
            path.chmod(0o755)
        elif path.is_file():
            path.chmod(path.stat().st_mode | 0o644)
    return folder


@functools.cache
def fcgi_wsgi(repo: Path, workroot: Path) -> Path:
    """A folder holding the `fcgi_wsgi` package, built from `repo` (quick when cargo is fresh)."""
    if shutil.which("maturin") is None:
        raise RuntimeError("maturin is not installed: `pip install maturin` (the version pyproject.toml wants)")
    wheels = _new_folder(workroot, "wheels")
    # --compatibility linux: no manylinux audit, the wheel only has to run on this machine.
    run(["maturin", "build", "--release", "--compatibility", "linux", "-o", str(wheels)], cwd=repo)
    built = sorted(wheels.glob("fcgi_wsgi-*.whl"))
    if len(built) != 1:
        raise RuntimeError(f"maturin build left {[p.name for p in built]} in {wheels}, not one wheel")
    folder = _new_folder(workroot, "fcgi_wsgi")
    with zipfile.ZipFile(built[0]) as wheel:
        wheel.extractall(folder)
    return _world_readable(folder)


@functools.cache
def django(workroot: Path) -> Path:
    """A folder holding Django (and its dependencies) for `PYTHON`, whatever runs the tests."""
    version = run([PYTHON, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"]).strip()
    folder = _new_folder(workroot, "django")
    # Wheels for PYTHON's version, not the running one's (pip resolves for --python-version).
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--no-input", "--disable-pip-version-check"]
    target = ["--target", str(folder), "--python-version", version, "--only-binary=:all:", DJANGO]
    run([*pip, "--root-user-action=ignore", *target])
    return _world_readable(folder)

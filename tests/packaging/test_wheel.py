"""The wheel and sdist in dist/ (from `make dist`), installed the way a user would.

The wheel goes into a fresh venv of each CPython from 3.9 to 3.13 that pyenv has, with no cargo
or rustc on PATH, and the PEP 3333 semantics suite and the Django example run there against it.
The sdist builds a working wheel in a clean venv (that one needs Rust).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DIST = ROOT / "dist"
# What runs against the installed package: the PEP 3333 semantics and the Django page.
SUITE = [ROOT / "tests" / "python" / "test_wsgi.py", ROOT / "tests" / "python" / "test_django.py"]
# What the suite imports beyond the package; binaries only, so nothing here needs a compiler.
SUITE_NEEDS = ["pytest>=7", "django>=4.2"]
VERSIONS = ["3.9", "3.10", "3.11", "3.12", "3.13"]


def only(pattern: str) -> Path:
    found = sorted(DIST.glob(pattern))
    assert len(found) == 1, f"want one {pattern} in {DIST} (run `make dist`), found {found}"
    return found[0]


def pyenv_root() -> Path:
    if os.environ.get("PYENV_ROOT"):
        return Path(os.environ["PYENV_ROOT"])
    pyenv = shutil.which("pyenv")
    if pyenv:
        return Path(subprocess.run([pyenv, "root"], capture_output=True, text=True, check=True).stdout.strip())
    return Path.home() / ".pyenv"


def interpreter(version: str) -> Path:
    """The newest pyenv CPython `version`.x, or a skip that says none is there."""
    versions = pyenv_root() / "versions"
    found = []
    for folder in versions.glob(f"{version}.*"):
        patch = folder.name[len(version) + 1 :]
        python = folder / "bin" / f"python{version}"
        if patch.isdigit() and python.exists():
            found.append((int(patch), python))
    if not found:
        pytest.skip(f"no CPython {version} on this machine (looked for {versions}/{version}.N/bin/python{version})")
    return max(found)[1]


def without_rust() -> str:
    """PATH less every folder that holds cargo or rustc (~/.cargo/bin), and less pyenv's shims."""
    kept = []
    for folder in os.environ["PATH"].split(os.pathsep):
        if not folder or folder.endswith("/shims"):
            continue
        if any(os.access(os.path.join(folder, tool), os.X_OK) for tool in ("cargo", "rustc", "rustup")):
            continue
        kept.append(folder)
    path = os.pathsep.join(kept)
    assert shutil.which("cargo", path=path) is None and shutil.which("rustc", path=path) is None
    return path


def make_venv(python: Path, where: Path, path: str) -> tuple[Path, dict[str, str]]:
    """A fresh venv of `python` at `where`, and the environment that runs inside it."""
    subprocess.run([str(python), "-m", "venv", str(where)], check=True, timeout=120)
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PYTHON", "VIRTUAL_ENV", "PYENV"))}
    env.update({"PATH": f"{where / 'bin'}{os.pathsep}{path}", "VIRTUAL_ENV": str(where)})
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    for key in ("CARGO_HOME", "RUSTUP_HOME", "CARGO"):
        env.pop(key, None)
    return where / "bin" / "python", env


def run(command: list, env: dict[str, str], cwd: Path, timeout: float) -> subprocess.CompletedProcess:
    command = [str(part) for part in command]
    result = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{command} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
    return result


def run_suite(python: Path, venv: Path, env: dict[str, str], cwd: Path) -> str:
    """The installed fcgi_wsgi is the venv's, not the source tree's; then the suite passes on it."""
    where = run([python, "-c", "import fcgi_wsgi; print(fcgi_wsgi.__file__, fcgi_wsgi.__version__)"], env, cwd, 60)
    assert where.stdout.startswith(str(venv)), where.stdout
    suite = run([python, "-m", "pytest", "-c", ROOT / "tests" / "pytest.ini", "-q", *SUITE], env, cwd, 600)
    return suite.stdout.strip().splitlines()[-1]


def test_wheel_is_abi3_manylinux2014():
    wheel = only("*.whl")
    assert "-cp39-abi3-" in wheel.name and "manylinux2014_x86_64" in wheel.name, wheel.name


@pytest.mark.parametrize("version", VERSIONS)
def test_wheel_installs_and_serves_without_rust(version, tmp_path):
    python = interpreter(version)
    wheel = only("*.whl")
    venv_python, env = make_venv(python, tmp_path / "venv", without_rust())
    # --only-binary: pip may not fall back to building anything, ours least of all.
    run([venv_python, "-m", "pip", "install", "-q", "--only-binary", ":all:", wheel, *SUITE_NEEDS], env, tmp_path, 600)
    said = run_suite(venv_python, tmp_path / "venv", env, tmp_path)
    print(f"CPython {version}: {said}")


def test_sdist_builds_a_working_wheel(tmp_path):
    sdist = only("*.tar.gz")
    if shutil.which("cargo") is None:
        pytest.fail("building the sdist needs cargo on PATH")
    venv_python, env = make_venv(Path(sys.executable).resolve(), tmp_path / "venv", os.environ["PATH"])
    env["CARGO_TARGET_DIR"] = str(tmp_path / "target")  # nothing reused from the source tree's builds
    # --no-cache-dir: a wheel pip built from this sdist before is not reused; this one is built now.
    run([venv_python, "-m", "pip", "install", "-q", "--no-cache-dir", sdist], env, tmp_path, 900)
    run([venv_python, "-m", "pip", "install", "-q", "--only-binary", ":all:", *SUITE_NEEDS], env, tmp_path, 600)
    said = run_suite(venv_python, tmp_path / "venv", env, tmp_path)
    print(f"sdist on CPython {sys.version_info[0]}.{sys.version_info[1]}: {said}")

"""The package's types as a typed program sees them: `mypy --strict` accepts a program using
every public name (tests/typing/every_public_name.py), and `python -m fcgi_wsgi --version` says
the version."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import fcgi_wsgi

EXAMPLE = Path(__file__).parent.parent / "typing" / "every_public_name.py"


def test_mypy_strict_accepts_a_program_using_every_public_name(tmp_path) -> None:
    names = set(fcgi_wsgi.__all__)
    used = EXAMPLE.read_text()
    assert all(name in used for name in names), sorted(name for name in names if name not in used)
    checked = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--cache-dir", str(tmp_path), str(EXAMPLE)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_command_says_its_version() -> None:
    said = subprocess.run([sys.executable, "-m", "fcgi_wsgi", "--version"], capture_output=True, text=True, timeout=30)
    assert (said.returncode, said.stdout) == (0, f"fcgi-wsgi {fcgi_wsgi.__version__}\n"), said

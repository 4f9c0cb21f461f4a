"""The C libraries installed as a packager installs them, then used as a C program's build uses them.

`make install-capi install-compat DESTDIR=...` (cargo-c's `cargo cinstall`) lays out a tree under
a scratch DESTDIR; nothing is installed on the machine. Programs are then built with nothing but
what `pkg-config` says (PKG_CONFIG_LIBDIR is the tree's lib/pkgconfig, PKG_CONFIG_SYSROOT_DIR the
DESTDIR, so the flags point into the tree): examples/c/hello.c on fcgi-capi, and libfcgi programs
left as they are, examples/compat/echo.c (fcgiapp.h) and stdio.c (fcgi_stdio.h), on fcgi-compat;
each shared (the loader finds the library through its soname link) and statically. Each runs as
CGI: its environment is the request's, fd 0 is a pipe, not a listening socket.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PREFIX = "/usr/local"
CFLAGS = ["-std=c11", "-D_POSIX_C_SOURCE=200809L", "-Wall", "-Wextra", "-Werror", "-O2"]


def workspace_version() -> str:
    """[workspace.package] version in the root Cargo.toml."""
    manifest = (ROOT / "Cargo.toml").read_text()
    found = re.search(r'^\[workspace\.package\][^\[]*?^version\s*=\s*"([^"]+)"', manifest, re.M | re.S)
    assert found, "no [workspace.package] version in Cargo.toml"
    return found.group(1)


VERSION = workspace_version()
MAJOR = VERSION.split(".")[0]


def run(command: list, env: dict[str, str] | None = None, timeout: float = 120) -> str:
    """Runs `command`, which must succeed; its stdout."""
    command = [str(part) for part in command]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
    said = f"{result.stdout}{result.stderr}"
    assert result.returncode == 0, f"{shlex.join(command)} failed ({result.returncode}):\n{said}"
    return result.stdout


@pytest.fixture(scope="module")
def destdir(tmp_path_factory) -> Path:
    """The tree `make install-capi install-compat` lays out under a scratch DESTDIR."""
    destdir = tmp_path_factory.mktemp("destdir")
    run(["make", "-C", ROOT, "install-capi", "install-compat", f"DESTDIR={destdir}", f"PREFIX={PREFIX}"], timeout=900)
    return destdir


def libdir(destdir: Path) -> Path:
    return destdir / PREFIX.lstrip("/") / "lib"


def pkg_config(destdir: Path, *args: str) -> list[str]:
    """pkg-config's answer about the tree, and nothing of the machine's own .pc files."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("PKG_CONFIG")}
    env["PKG_CONFIG_LIBDIR"] = str(libdir(destdir) / "pkgconfig")
    env["PKG_CONFIG_SYSROOT_DIR"] = str(destdir)
    return shlex.split(run(["pkg-config", *args], env))


def build(source: str, flags: list[str], program: Path) -> Path:
    cc = shlex.split(os.environ.get("CC", "cc"))
    run([*cc, *CFLAGS, ROOT / "examples" / source, *flags, "-pthread", "-o", program])
    return program


def needed(program: Path) -> list[str]:
    """The shared libraries `program` asks the loader for."""
    return re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", run(["readelf", "-d", program]))


def cgi(program: Path, env: dict[str, str], body: bytes = b"") -> bytes:
    """A CGI run: the environment is exactly `env`, fd 0 a pipe carrying `body`; the response body."""
    result = subprocess.run([str(program)], env=env, input=body, capture_output=True, timeout=30)
    assert result.returncode == 0, f"{program} exited {result.returncode}: {result.stderr!r}"
    head, blank, response = result.stdout.partition(b"\r\n\r\n")
    assert blank, f"{program}: no CGI headers in {result.stdout!r}"
    return response


def shared_env(destdir: Path, **request: str) -> dict[str, str]:
    """A request's CGI environment, and where the loader finds the tree's libraries."""
    return {"GATEWAY_INTERFACE": "CGI/1.1", "LD_LIBRARY_PATH": str(libdir(destdir)), **request}


@pytest.mark.parametrize("name", ["fcgi_capi", "fcgi_compat"])
def test_each_library_is_installed_shared_with_its_soname_links_and_static(destdir, name):
    lib = libdir(destdir)
    real = lib / f"lib{name}.so.{VERSION}"
    assert real.is_file() and not real.is_symlink(), sorted(p.name for p in lib.iterdir())
    # The loader's name (the soname) and the linker's name (-lNAME), each a link to the real file.
    for link in (f"lib{name}.so.{MAJOR}", f"lib{name}.so"):
        assert (lib / link).is_symlink(), link
        assert (lib / link).resolve() == real.resolve(), link
    assert f"Library soname: [lib{name}.so.{MAJOR}]" in run(["readelf", "-d", real])
    assert (lib / f"lib{name}.a").is_file()


def test_the_headers_are_the_repositorys_own(destdir):
    include = destdir / PREFIX.lstrip("/") / "include"
    assert (include / "fcgi.h").read_bytes() == (ROOT / "include" / "fcgi.h").read_bytes()
    # libfcgi's names, in a folder of their own: libfcgi-dev's /usr/include ones stay as they are.
    for header in ("fcgiapp.h", "fcgi_stdio.h", "fastcgi.h"):
        installed = include / "fcgi-compat" / header
        assert installed.read_bytes() == (ROOT / "include" / "compat" / header).read_bytes(), header
    assert not (include / "fcgiapp.h").exists()


@pytest.mark.parametrize("package", ["fcgi-capi", "fcgi-compat"])
def test_pkg_config_describes_each_at_the_workspace_version(destdir, package):
    assert pkg_config(destdir, "--modversion", package) == [VERSION]
    include = destdir / PREFIX.lstrip("/") / "include"
    want = include if package == "fcgi-capi" else include / "fcgi-compat"
    assert pkg_config(destdir, "--cflags", package) == [f"-I{want}"]
    library = package.replace("-", "_")
    assert pkg_config(destdir, "--libs", package) == [f"-L{libdir(destdir)}", f"-l{library}"]


def test_hello_c_built_with_pkg_config_runs_as_cgi_shared_and_static(destdir, tmp_path):
    flags = pkg_config(destdir, "--cflags", "--libs", "fcgi-capi")
    shared = build("c/hello.c", flags, tmp_path / "hello")
    assert "libfcgi_capi.so.0" in needed(shared)
    assert cgi(shared, shared_env(destdir, REQUEST_URI="/")) == b"Hello, world!"

    # Static: libfcgi_capi.a (-l:FILE) and the system libraries pkg-config lists for a static link.
    static_libs = pkg_config(destdir, "--libs", "--static", "fcgi-capi")
    static_libs = ["-l:libfcgi_capi.a" if flag == "-lfcgi_capi" else flag for flag in static_libs]
    static = build("c/hello.c", pkg_config(destdir, "--cflags", "fcgi-capi") + static_libs, tmp_path / "hello-static")
    assert not any("fcgi" in library for library in needed(static)), needed(static)
    assert cgi(static, {"GATEWAY_INTERFACE": "CGI/1.1", "REQUEST_URI": "/"}) == b"Hello, world!"


def test_unmodified_libfcgi_programs_built_with_pkg_config_run_as_cgi(destdir, tmp_path):
    flags = pkg_config(destdir, "--cflags", "--libs", "fcgi-compat")
    echo = build("compat/echo.c", flags, tmp_path / "echo")
    # fcgi-compat's headers and library, not libfcgi-dev's, though both are on the machine.
    assert "libfcgi_compat.so.0" in needed(echo) and "libfcgi.so.0" not in needed(echo), needed(echo)
    assert cgi(echo, shared_env(destdir, REQUEST_URI="/hello")) == b"Hello, world!"

    # fcgi_stdio.h: printf and fread on the request, here the real stdio of a CGI run.
    stdio = build("compat/stdio.c", flags, tmp_path / "stdio")
    request = {"REQUEST_METHOD": "POST", "REQUEST_URI": "/up", "CONTENT_LENGTH": "5"}
    said = cgi(stdio, shared_env(destdir, **request), b"abcde")
    assert said.startswith(b"request 1\nmethod=POST uri=/up query=\n") and b"ABCDE" in said, said

    static_libs = pkg_config(destdir, "--libs", "--static", "fcgi-compat")
    static_libs = ["-l:libfcgi_compat.a" if flag == "-lfcgi_compat" else flag for flag in static_libs]
    flags = pkg_config(destdir, "--cflags", "fcgi-compat") + static_libs
    static = build("compat/echo.c", flags, tmp_path / "echo-static")
    assert not any("fcgi" in library for library in needed(static)), needed(static)
    assert cgi(static, {"GATEWAY_INTERFACE": "CGI/1.1", "REQUEST_URI": "/hello"}) == b"Hello, world!"

"""The command line's settings, from four places. A flag wins over ``FCGI_WSGI_ARGS`` (a command
line in the environment, as gunicorn's ``GUNICORN_CMD_ARGS``), which wins over the ``--config``
file (TOML), which wins over the defaults.

The file's keys are the long flag names: ``max-requests = 100`` or ``max_requests = 100`` (both
spellings are taken, as a flag and as the ``serve_wsgi`` keyword; one key given in both is an
error), plus ``app``. Each value is checked against the kind its row of the core's settings table
gives it (``fcgi_wsgi.settings()``), then by the core itself, as ``serve_wsgi`` would; an error
names the key and where it came from. ``--check-config`` prints the effective settings with their
sources and exits, non-zero on an error."""

from __future__ import annotations

import argparse
import difflib
import json
import os
import shlex
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from ._asgi import given_without_asgi
from ._fcgi_wsgi import __version__, check_settings, settings

ENV = "FCGI_WSGI_ARGS"

#: Kinds the settings table does not have, for the options of this command line alone: a yes/no
#: of its own, an address list, a server hook (MODULE:FUNCTION), and the process count, which
#: also takes MIN:MAX (a dynamic pool).
BOOL, ADDRESSES, HOOK, POOL = "bool", "addresses", "hook", "pool"
#: A choice among fixed words.
INTERFACE, LIFESPAN = "interface", "lifespan"
CHOICES = {INTERFACE: ("wsgi", "asgi"), LIFESPAN: ("auto", "on", "off")}

#: gunicorn's server hooks, passed to ``serve_wsgi`` as keywords.
HOOKS = ("on_starting", "post_fork", "worker_exit", "pre_request", "post_request")


@dataclass(frozen=True)
class Option:
    """One thing the command line, FCGI_WSGI_ARGS and the file can set."""

    name: str
    kind: str
    help: str
    default: str
    #: A row of the core's table, passed to ``serve_wsgi`` as a keyword.
    setting: bool = False


def _options() -> dict[str, Option]:
    own = [
        Option("app", "text", "the WSGI (or ASGI) app as module:attribute", "none: it must be given"),
        Option("interface", INTERFACE, "the app's interface: wsgi or asgi", "wsgi"),
        Option("lifespan", LIFESPAN, "an ASGI app's lifespan protocol: auto, on or off", "auto"),
        Option("max_concurrency", "count", "an ASGI app's requests in flight at once in a process", "100"),
        Option("bind", "text", "unix:PATH, PATH, HOST:PORT or [IPV6]:PORT", "fd 0, else systemd's socket, else CGI"),
        Option("preload", BOOL, "import the app before forking the processes", "no"),
        Option("reload", BOOL, "re-execute when a source file changes", "no"),
        Option("cgi", BOOL, "serve one CGI request, whatever fd 0 is", "no"),
        Option("chdir", "text", "change to this folder before importing the app", "the current folder"),
        Option("debug", BOOL, "show tracebacks to every client", "no"),
        Option(
            "debug_addresses",
            ADDRESSES,
            "show tracebacks only to these client addresses or networks, e.g. 127.0.0.1,::1,10.0.0.0/8",
            "nobody",
        ),
    ]
    hooks = [Option(hook, HOOK, f"gunicorn's {hook} hook, as MODULE:FUNCTION", "none") for hook in HOOKS]
    # force_cgi is --cgi; handle_signals is for programs that embed the server.
    table = [
        Option(
            name, POOL if name == "processes" else kind, f"{doc}{f'; 0: {zero}' if zero else ''}", default, setting=True
        )
        for name, kind, default, zero, doc in settings()
        if name not in ("force_cgi", "handle_signals")
    ]
    return {option.name: option for option in own + hooks + table}


OPTIONS = _options()
#: How a flag's text becomes a value of each kind (the core reads a mode's octal text itself).
FLAG_TYPES = {"count": int, "bytes": int, "seconds": float, "text": str, "mode": str, ADDRESSES: str, HOOK: str}
FLAG_TYPES[POOL] = FLAG_TYPES[INTERFACE] = FLAG_TYPES[LIFESPAN] = str


def flag(name: str) -> str:
    return f"--{name.replace('_', '-')}"


class ConfigError(Exception):
    """A setting that cannot be taken: the message names it and where it came from."""


class _Parser(argparse.ArgumentParser):
    """Raises instead of exiting, so that FCGI_WSGI_ARGS's errors can say where they are."""

    def error(self, message: str):
        raise ConfigError(message)


def parser() -> argparse.ArgumentParser:
    """The command line, with only the options given in the namespace it parses to."""
    p = _Parser(
        prog="python -m fcgi_wsgi",
        description="Serve a WSGI or ASGI app over FastCGI (or one CGI request).",
        epilog=f"Options may also come from {ENV} (a command line) and a --config file (TOML, its keys the "
        "long option names); a flag wins over the environment, which wins over the file.",
        argument_default=argparse.SUPPRESS,
    )
    p.add_argument("app", nargs="?", help=OPTIONS["app"].help)
    p.add_argument("--version", action="version", version=f"fcgi-wsgi {__version__}")
    p.add_argument("--config", metavar="FILE", help="read settings from this TOML file")
    p.add_argument("--check-config", action="store_true", help="print the effective settings and their sources")
    debug = p.add_mutually_exclusive_group()
    for option in OPTIONS.values():
        if option.name == "app":
            continue
        help_text = f"{option.help} (default: {option.default})".replace("%", "%%")
        where = debug if option.name.startswith("debug") else p
        if option.kind in (BOOL, "flag"):
            where.add_argument(flag(option.name), action="store_true", help=help_text)
        else:
            metavar = "LIST" if option.kind == ADDRESSES else None
            where.add_argument(
                flag(option.name),
                type=FLAG_TYPES[option.kind],
                metavar=metavar,
                choices=CHOICES.get(option.kind),
                help=help_text,
            )
    return p


def _whole(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


#: What a file's value of each kind must be, and how to say so.
KINDS = {
    "count": (lambda v: _whole(v) and v >= 0, "a whole number, 0 or more"),
    "bytes": (lambda v: _whole(v) and v >= 0, "a whole number of bytes, 0 or more"),
    "seconds": (lambda v: _whole(v) or isinstance(v, float), "a number of seconds"),
    "text": (lambda v: isinstance(v, str), "a string"),
    "mode": (lambda v: _whole(v) or isinstance(v, str), 'an octal mode: a string ("0660") or a number (0o660)'),
    BOOL: (lambda v: isinstance(v, bool), "true or false"),
    HOOK: (lambda v: isinstance(v, str) and ":" in v, 'a "module:function" string'),
    POOL: (lambda v: (_whole(v) and v >= 0) or isinstance(v, str), 'a whole number, or "MIN:MAX"'),
    "flag": (lambda v: isinstance(v, bool), "true or false"),
    INTERFACE: (lambda v: v in CHOICES[INTERFACE], "wsgi or asgi"),
    LIFESPAN: (lambda v: v in CHOICES[LIFESPAN], "auto, on or off"),
    ADDRESSES: (
        lambda v: isinstance(v, str) or (isinstance(v, list) and all(isinstance(e, str) for e in v)),
        "a string or a list of strings",
    ),
}


def checked(kind: str, value: object) -> object:
    """`value`, from a file, if it is of `kind`; else TypeError saying what it should be."""
    valid, wanted = KINDS[kind]
    if not valid(value):
        raise TypeError(f"must be {wanted}, not {type(value).__name__} {value!r}")
    return float(value) if kind == "seconds" else value  # type: ignore[arg-type]


def read_file(path: str) -> dict[str, object]:
    """The settings of a TOML file, checked key by key."""
    # Imported here: a command line without a file does not pay for the parser (5 ms).
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - the dependency on 3.9 and 3.10
        import tomli as tomllib
    try:
        with open(path, "rb") as file:
            data = tomllib.load(file)
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(f"config file {path}: {e}") from None
    found: dict[str, object] = {}
    spelled: dict[str, str] = {}
    for key, value in data.items():
        name = key.replace("-", "_")
        where = f"config file {path}: {key}"
        if name in found:
            raise ConfigError(f"{where}: given twice, as {spelled[name]!r} and {key!r}")
        if name in ("config", "check_config"):
            raise ConfigError(f"{where}: is an option of the command line, not of a file")
        option = OPTIONS.get(name)
        if option is None:
            close = difflib.get_close_matches(name, OPTIONS, n=1)
            hint = f" (did you mean {close[0].replace('_', '-')!r}?)" if close else ""
            raise ConfigError(f"{where}: unknown key{hint}")
        try:
            found[name] = checked(option.kind, value)
        except TypeError as e:
            raise ConfigError(f"{where}: {e}") from None
        spelled[name] = key
    return found


@dataclass
class Effective:
    """The settings as the sources made them, and where each came from."""

    values: dict[str, object] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)
    check: bool = False

    def serve_settings(self) -> dict[str, object]:
        """The rows of the core's table, as ``serve_wsgi`` keywords (``processes`` given as
        ``"MIN:MAX"`` split into ``processes`` and ``max_processes``)."""
        given = {name: value for name, value in self.values.items() if OPTIONS[name].setting}
        if isinstance(given.get("processes"), str):
            from . import pool_size

            given["processes"], most = pool_size(given["processes"])  # type: ignore[arg-type]
            if most is not None:
                given["max_processes"] = most
        return given

    def interface(self) -> dict[str, object]:
        """The interface and, for an ASGI app, its own settings, as ``serve_wsgi`` keywords."""
        names = ("interface", "lifespan", "max_concurrency")
        return {name: self.values[name] for name in names if name in self.values}

    def hooks(self) -> dict[str, object]:
        """The server hooks given, as ``serve_wsgi`` keywords."""
        return {name: value for name, value in self.values.items() if OPTIONS[name].kind == HOOK}

    def report(self) -> str:
        """One line per option: ``name = value  # source``, or ``# name: default (default)``; the set
        lines make a config file."""
        lines = []
        for option in OPTIONS.values():
            key = option.name.replace("_", "-")
            if option.name in self.values:
                lines.append(f"{key} = {_toml(self.values[option.name])}  # {self.sources[option.name]}")
            else:
                lines.append(f"# {key}: {option.default} (default)")
        return "\n".join(lines)


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return json.dumps(value)


def gather(argv: Sequence[str], environ: Mapping[str, str]) -> Effective:
    """The effective settings of `argv` and `environ` (FCGI_WSGI_ARGS, and the folder the first
    run started in, which a relative --config is taken from across a reload's --chdir)."""
    p = parser()
    try:
        flags = vars(p.parse_args(list(argv)))
    except ConfigError as e:
        raise ConfigError(f"command line: {e}") from None
    try:
        env = vars(p.parse_args(shlex.split(environ.get(ENV, ""))))
    except (ConfigError, ValueError) as e:
        raise ConfigError(f"{ENV}: {e}") from None
    config = flags.get("config") or env.get("config")
    file: dict[str, object] = {}
    file_source = ""
    if config:
        path = os.path.join(environ.get("FCGI_WSGI_START_DIR", os.getcwd()), config)
        file = read_file(path)
        file_source = f"file {path}"
    effective = Effective(check=bool(flags.get("check_config") or env.get("check_config")))
    for source, values in ((file_source, file), (f"env {ENV}", env), ("flag", flags)):
        for name, value in values.items():
            if name in OPTIONS:
                effective.values[name] = value
                effective.sources[name] = source
    validate(effective)
    return effective


def validate(effective: Effective) -> None:
    """What the core and the traceback policy say of each value, naming the key and its source."""
    from ._errors import traceback_policy

    def fail(name: str, message: object) -> ConfigError:
        return ConfigError(f"{name.replace('_', '-')} (from {effective.sources[name]}): {message}")

    values = effective.values
    if "app" not in values:
        raise ConfigError("app: not given (module:attribute, on the command line, in FCGI_WSGI_ARGS or as app = ...)")
    misplaced = given_without_asgi(
        values.get("interface", "wsgi"), values.get("lifespan", "auto"), values.get("max_concurrency")
    )
    if misplaced is not None:
        raise fail(misplaced, "is a setting of an ASGI app (interface = asgi)")
    if values.get("max_concurrency") == 0:
        raise fail("max_concurrency", "must be 1 or more")
    if values.get("debug") and "debug_addresses" in values:
        raise fail("debug_addresses", "debug and debug-addresses exclude each other")
    if "debug_addresses" in values:
        try:
            traceback_policy(addresses(values["debug_addresses"]))
        except ValueError as e:
            raise fail("debug_addresses", e) from None
    if "bind" in values:
        try:
            check_settings(values["bind"])
        except ValueError as e:
            raise fail("bind", e) from None
    try:
        settings_given = effective.serve_settings()
    except ValueError as e:
        raise fail("processes", e) from None
    for name, value in settings_given.items():
        try:
            check_settings(None, {name: value})
        except (TypeError, ValueError) as e:
            raise fail(name if name in effective.sources else "processes", e) from None


def addresses(value: object) -> list[str]:
    """``--debug-addresses``'s list: comma-separated text, or a file's list."""
    entries = value.split(",") if isinstance(value, str) else list(value)  # type: ignore[arg-type]
    return [entry.strip() for entry in entries if entry.strip()]

"""``python -m fcgi_wsgi module:app [--bind ADDR] [--workers N] [--max-requests N] [--cgi]``"""

from __future__ import annotations

import argparse
import os
import sys

from . import serve_wsgi, settings
from ._errors import traceback_policy

#: The settings that are flags here (force_cgi is --cgi; handle_signals is for programs that
#: embed the server).
TUNABLE = [name for name, *_ in settings() if name not in ("force_cgi", "handle_signals")]
TYPES = {"count": int, "bytes": int, "seconds": float, "text": str, "mode": str}


def add_setting_flags(parser: argparse.ArgumentParser) -> None:
    """``--NAME-WITH-DASHES`` for each row of the core's settings table."""
    for name, kind, default, zero, doc in settings():
        if name in TUNABLE:
            meaning = f"; 0: {zero}" if zero else ""
            help_text = f"{doc} (default: {default}{meaning})".replace("%", "%%")
            parser.add_argument(f"--{name.replace('_', '-')}", type=TYPES[kind], help=help_text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fcgi_wsgi", description=__doc__)
    parser.add_argument("app", help="the WSGI app as module:attribute")
    parser.add_argument("--bind", help="unix:PATH, PATH, HOST:PORT or [IPV6]:PORT (default: fd 0, else CGI)")
    parser.add_argument("--preload", action="store_true", help="import the app before forking the processes")
    parser.add_argument("--reload", action="store_true", help="re-execute when a source file changes")
    parser.add_argument("--cgi", action="store_true", help="serve one CGI request, whatever fd 0 is")
    parser.add_argument("--chdir", help="change to this folder before importing the app")
    add_setting_flags(parser)
    debug = parser.add_mutually_exclusive_group()
    debug.add_argument("--debug", action="store_true", help="show tracebacks to every client")
    debug.add_argument(
        "--debug-addresses",
        metavar="LIST",
        help="show tracebacks only to these client addresses or networks, e.g. 127.0.0.1,::1,10.0.0.0/8",
    )
    args = parser.parse_args(argv)
    debug: bool | list[str] = args.debug
    if args.debug_addresses:
        debug = [entry.strip() for entry in args.debug_addresses.split(",") if entry.strip()]
        try:
            traceback_policy(debug)
        except ValueError as e:
            parser.error(f"--debug-addresses: {e}")
    if args.chdir:
        # A reload re-executes this command line in the folder it changed to: a relative
        # --chdir is taken from the folder the first program started in, whatever the reload.
        start = os.environ.setdefault("FCGI_WSGI_START_DIR", os.getcwd())
        os.chdir(os.path.join(start, args.chdir))
    # Like gunicorn: the app's module is found from the current folder.
    sys.path.insert(0, os.getcwd())
    given = {name: getattr(args, name) for name in TUNABLE}
    serve_wsgi(args.app, args.bind, preload=args.preload, reload=args.reload, force_cgi=args.cgi, debug=debug, **given)
    return 0


if __name__ == "__main__":
    sys.exit(main())

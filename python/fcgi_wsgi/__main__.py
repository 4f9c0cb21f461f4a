"""``python -m fcgi_wsgi module:app [--bind ADDR] [--workers N] [--max-requests N] [--cgi]``"""

from __future__ import annotations

import argparse
import os
import sys

from . import serve_wsgi
from ._errors import traceback_policy


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fcgi_wsgi", description=__doc__)
    parser.add_argument("app", help="the WSGI app as module:attribute")
    parser.add_argument("--bind", help="unix:PATH, PATH, HOST:PORT or [IPV6]:PORT (default: fd 0, else CGI)")
    parser.add_argument("--workers", type=int, help="requests served at once (threads per process)")
    parser.add_argument("--processes", type=int, help="worker processes sharing the listener")
    parser.add_argument("--preload", action="store_true", help="import the app before forking the processes")
    parser.add_argument("--max-requests", type=int, help="exit after this many requests")
    parser.add_argument("--max-connections", type=int, help="connections open at once")
    parser.add_argument("--multiplex", type=int, help="requests at once on one connection")
    parser.add_argument("--max-body-bytes", type=int, help="largest request body (413 beyond)")
    parser.add_argument("--max-params-bytes", type=int, help="largest params block of a request (431 beyond)")
    parser.add_argument("--max-param-bytes", type=int, help="largest name-value pair (431 beyond)")
    parser.add_argument("--max-params", type=int, help="most name-value pairs in a request (431 beyond)")
    parser.add_argument("--read-timeout", type=float, help="seconds a request may wait for the web server")
    parser.add_argument("--write-timeout", type=float, help="seconds a write may wait for the web server to read")
    parser.add_argument("--idle-timeout", type=float, help="seconds a kept-alive connection may idle")
    parser.add_argument("--head-timeout", type=float, help="seconds a request's params may take to arrive")
    parser.add_argument("--graceful-timeout", type=float, help="seconds a stop or reload waits for requests in flight")
    parser.add_argument("--reload", action="store_true", help="re-execute when a source file changes")
    parser.add_argument("--cgi", action="store_true", help="serve one CGI request, whatever fd 0 is")
    parser.add_argument("--chdir", help="change to this folder before importing the app")
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
    serve_wsgi(
        args.app,
        args.bind,
        workers=args.workers,
        processes=args.processes,
        preload=args.preload,
        reload=args.reload,
        max_requests=args.max_requests,
        max_connections=args.max_connections,
        multiplex=args.multiplex,
        max_body_bytes=args.max_body_bytes,
        max_params_bytes=args.max_params_bytes,
        max_param_bytes=args.max_param_bytes,
        max_params=args.max_params,
        read_timeout=args.read_timeout,
        write_timeout=args.write_timeout,
        idle_timeout=args.idle_timeout,
        head_timeout=args.head_timeout,
        graceful_timeout=args.graceful_timeout,
        force_cgi=args.cgi,
        debug=debug,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What a failing request leaves behind: a traceback in the web server's error log (and in
Python logging, where the app configured it), and a 500 page with the traceback only for
clients allowed to see it."""

from __future__ import annotations

import ipaddress
import logging
import traceback
from collections.abc import Sequence
from typing import Callable

logger = logging.getLogger("fcgi_wsgi")

SHORT_PAGE = b"Internal Server Error\n"


def traceback_policy(debug: bool | Sequence[str]) -> Callable[[dict], bool]:
    """Whether a request's client may see tracebacks: all, none, or those in a list of networks."""
    if debug is True or debug is False:
        return lambda environ: debug
    networks = [ipaddress.ip_network(entry, strict=False) for entry in debug]

    def allowed(environ: dict) -> bool:
        try:
            address = ipaddress.ip_address(environ.get("REMOTE_ADDR", "").split("%")[0])
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
            address = address.ipv4_mapped
        return any(address in network for network in networks)

    return allowed


def report(environ: dict, exc: BaseException, show_traceback: Callable[[dict], bool]) -> bytes:
    """Logs a failed request and returns the body of its 500 page."""
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    where = f"{environ.get('REQUEST_METHOD', '?')} {environ.get('REQUEST_URI') or environ.get('PATH_INFO', '')}"
    errors = environ.get("wsgi.errors")
    try:
        errors.write(f"fcgi_wsgi: error in {where}\n{text}")
        errors.flush()
    except Exception:  # the web server may be gone: the log line is best effort
        pass
    if logger.hasHandlers():
        logger.error("error in %s", where, exc_info=exc)
    return text.encode("utf-8", "backslashreplace") if show_traceback(environ) else SHORT_PAGE

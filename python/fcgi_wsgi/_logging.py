"""The default home of the server's own log records when the program configured none."""

from __future__ import annotations

import logging
import sys

#: gunicorn's error-log line: ``[2026-12-04 18:56:08 +0000] [1234] [INFO] message``.
FORMAT = "[%(asctime)s] [%(process)d] [%(levelname)s] %(message)s"
DATE_FORMAT = "%Y-%m-%d %H:%M:%S %z"


def add_stderr_handler(logger: logging.Logger) -> None:
    """Sends ``logger``'s records to stderr (the web server's error log under mod_fcgid and
    lighttpd). They stop there: a root handler the app adds later must not print them twice."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(FORMAT, DATE_FORMAT))
    logger.addHandler(handler)
    logger.propagate = False

"""``reload=True``: watch the source files of every imported module and, when one changes, ask
the server to reload: it finishes the requests in flight, then re-executes the program on the
same listening socket, so the next request runs the new code and no connection is refused."""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable

POLL_SECONDS = 0.25


def source_files() -> dict[str, float]:
    """The modification time of each imported module's source file."""
    mtimes = {}
    for module in list(sys.modules.values()):
        path = getattr(module, "__file__", None)
        if not path:
            continue
        try:
            mtimes[path] = os.stat(path).st_mtime
        except OSError:
            continue
    return mtimes


def watch(request_reload: Callable[[], None], poll_seconds: float = POLL_SECONDS) -> threading.Thread:
    """Starts a daemon thread that calls ``request_reload()`` once a watched file changes."""

    def run() -> None:
        known = source_files()
        while True:
            threading.Event().wait(poll_seconds)
            current = source_files()
            if any(current.get(path, mtime) != mtime for path, mtime in known.items()):
                request_reload()
                return
            # Modules imported since (lazily, by a request) are watched from now on.
            known.update({path: mtime for path, mtime in current.items() if path not in known})

    thread = threading.Thread(target=run, name="fcgi_wsgi-reload", daemon=True)
    thread.start()
    return thread

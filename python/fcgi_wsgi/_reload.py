"""``reload=True``: watch the source files of every imported module and, when one changes, ask
the server to reload: it finishes the requests in flight, then re-executes the program on the
same listening socket, so the next request runs the new code and no connection is refused."""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable

POLL_SECONDS = 0.25
# Before the app's modules are imported (this module is imported with fcgi_wsgi): a file
# changed after this, even before the watcher first saw it, is an edit.
STARTED = time.time()
# File times come from the kernel's coarser clock.
CLOCK_SLACK = 0.02


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
        known: dict[str, float] = {}
        since = STARTED
        while True:
            polled = time.time()
            current = source_files()
            changed = any(
                mtime != known[path] if path in known else mtime > since - CLOCK_SLACK
                for path, mtime in current.items()
            )
            if changed:
                # Asked again each poll until the exec: a server not serving yet would drop it.
                request_reload()
            else:
                known.update(current)
                since = polled
            threading.Event().wait(poll_seconds)

    thread = threading.Thread(target=run, name="fcgi_wsgi-reload", daemon=True)
    thread.start()
    return thread

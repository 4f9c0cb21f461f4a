"""flup's threaded FastCGI server (``flup.server.fcgi.WSGIServer``) on a Unix socket.

``python flup_server.py module:app SOCKET THREADS``

flup serves each connection on a thread of its pool and closes connections it has no thread for,
so the pool keeps ``THREADS`` threads ready and may grow past them while nginx holds more
connections open (a hard cap would turn load into 502s rather than queueing it).
"""

from __future__ import annotations

import importlib
import os
import sys

from flup.server.fcgi import WSGIServer


def main(spec: str, path: str, threads: str) -> None:
    sys.path.insert(0, os.getcwd())
    module, _, attribute = spec.partition(":")
    app = getattr(importlib.import_module(module), attribute or "application")
    spare = int(threads)
    WSGIServer(app, bindAddress=path, umask=0o077, minSpare=spare, maxSpare=spare).run()


if __name__ == "__main__":
    main(*sys.argv[1:])

"""fcgisgi (PyPI), the one other ASGI-over-FastCGI server, serving an app on a Unix socket:
`python fcgisgi_server.py MODULE:APP SOCKET` (uvloop's loop when installed, as ours)."""

from __future__ import annotations

import asyncio
import importlib
import sys

from fcgisgi import run_asgi_server


def main() -> None:
    spec, path = sys.argv[1], sys.argv[2]
    module, _, name = spec.partition(":")
    app = getattr(importlib.import_module(module), name)
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(run_asgi_server(app, path))


if __name__ == "__main__":
    main()

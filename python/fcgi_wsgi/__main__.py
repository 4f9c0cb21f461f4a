"""``python -m fcgi_wsgi module:app [--bind ADDR] [--workers N] [--config FILE] [--check-config] ...``"""

from __future__ import annotations

import os
import sys

from . import serve_wsgi
from ._config import ConfigError, addresses, gather


def main(argv: list[str] | None = None) -> int:
    try:
        effective = gather(sys.argv[1:] if argv is None else argv, os.environ)
    except ConfigError as e:
        print(f"python -m fcgi_wsgi: error: {e}", file=sys.stderr)
        return 2
    if effective.check:
        print(effective.report())
        return 0
    values = effective.values
    debug: bool | list[str] = bool(values.get("debug"))
    if "debug_addresses" in values:
        debug = addresses(values["debug_addresses"])
    if values.get("chdir"):
        # A reload re-executes this command line in the folder it changed to: a relative
        # --chdir is taken from the folder the first program started in, whatever the reload.
        start = os.environ.setdefault("FCGI_WSGI_START_DIR", os.getcwd())
        os.chdir(os.path.join(start, str(values["chdir"])))
    # Like gunicorn: the app's module is found from the current folder.
    sys.path.insert(0, os.getcwd())
    serve_wsgi(
        str(values["app"]),
        values.get("bind"),  # type: ignore[arg-type]
        preload=bool(values.get("preload")),
        reload=bool(values.get("reload")),
        force_cgi=bool(values.get("cgi")),
        debug=debug,
        **effective.interface(),
        **effective.serve_settings(),  # type: ignore[arg-type]
        **effective.hooks(),  # type: ignore[arg-type]
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The in-process limit of the Django page: `examples/django`'s `WSGIHandler` called N times on
a prebuilt environ for `GET /`, with no server at all. Run it under callgrind for N and 3N, as
`make bench-instructions` runs the servers; (I(3N) - I(N)) / 2N is the page's own cost, and a
server's count for the same page less this is its overhead per request:

    valgrind --tool=callgrind --callgrind-out-file=/tmp/limit.200 python3 bench/django_limit.py 200
    valgrind --tool=callgrind --callgrind-out-file=/tmp/limit.600 python3 bench/django_limit.py 600
"""

from __future__ import annotations

import io
import os
import sys
from pathlib import Path

SITE = Path(__file__).resolve().parent.parent / "examples" / "django"

#: What nginx's fastcgi_params give the page (less the request's own headers).
ENVIRON = {
    "REQUEST_METHOD": "GET",
    "PATH_INFO": "/",
    "SCRIPT_NAME": "",
    "QUERY_STRING": "",
    "SERVER_NAME": "127.0.0.1",
    "SERVER_PORT": "80",
    "SERVER_PROTOCOL": "HTTP/1.1",
    "HTTP_HOST": "127.0.0.1",
    "REMOTE_ADDR": "127.0.0.1",
    "wsgi.version": (1, 0),
    "wsgi.url_scheme": "http",
    "wsgi.multithread": False,
    "wsgi.multiprocess": False,
    "wsgi.run_once": False,
}


def main(requests: int) -> None:
    sys.path.insert(0, str(SITE))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "demo_site.settings")
    import django
    from django.core.handlers.wsgi import WSGIHandler

    django.setup()
    handler = WSGIHandler()

    def start_response(status: str, headers: list, exc_info: object = None) -> object:
        return lambda data: None

    body = b""
    for _ in range(requests):
        environ = dict(ENVIRON, **{"wsgi.input": io.BytesIO(b""), "wsgi.errors": sys.stderr})
        result = handler(environ, start_response)
        body = b"".join(result)
        result.close()
    assert b"Hello from Django" in body, body[:200]


if __name__ == "__main__":
    main(int(sys.argv[1]))

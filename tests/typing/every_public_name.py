"""Uses every public name of fcgi_wsgi as a typed program would; `mypy --strict` must accept it
(tests/packaging/test_typing.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import fcgi_wsgi
from fcgi_wsgi import (
    ClientDisconnected,
    ErrorStream,
    FileWrapper,
    InputStream,
    RequestBodyIncomplete,
    RequestTimeout,
    RequestTooLarge,
    StartResponse,
    __version__,
    list_environment,
    load_app,
    request_reload,
    request_stop,
    serve_asgi,
    serve_wsgi,
    server_stats,
    settings,
)
from fcgi_wsgi.authorizer import route, session_authorizer


def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    body: InputStream = environ["wsgi.input"]
    errors: ErrorStream = environ["wsgi.errors"]
    try:
        data = body.read()
    except (ClientDisconnected, RequestTooLarge, RequestBodyIncomplete) as e:
        errors.write(f"{e}\n")
        data = b""
    except RequestTimeout:
        raise
    start_response("200 OK", [("Content-Type", "text/plain")])
    return FileWrapper(iter([data]))


async def asgi_app(scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"hello"})


def main() -> str:
    version: str = __version__
    rows: list[tuple[str, str, str, str, str]] = settings()
    stats: dict[str, Any] | None = server_stats()
    loaded: Callable[..., Any] = load_app("fcgi_wsgi:list_environment")
    guarded: Callable[..., Any] = route(app, "/admin")
    sessions: Callable[..., Any] = session_authorizer(login_url="/login/")
    print(version, len(rows), stats, loaded, guarded, sessions, list_environment, fcgi_wsgi.serve_wsgi)
    request_stop()
    request_reload()
    if version == "asgi":
        return serve_asgi(asgi_app, "unix:/tmp/app.sock", lifespan="on", max_concurrency=500)
    return serve_wsgi(app, "unix:/tmp/app.sock", workers=2, timeout=30.0, status_path="/fcgi-status")

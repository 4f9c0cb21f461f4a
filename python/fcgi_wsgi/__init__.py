"""Serve any WSGI (PEP 3333) app over FastCGI, or as one CGI request, on a Rust core.

The two-line ``django.cgi``::

    from fcgi_wsgi import serve_wsgi
    from django.core.handlers.wsgi import WSGIHandler
    serve_wsgi(WSGIHandler())

runs under Apache mod_fcgid (fd 0 is a listening socket: FastCGI), Apache mod_cgi (it is not:
one CGI request), and, with ``bind=``, behind nginx, lighttpd or Apache mod_proxy_fcgi.
"""

from __future__ import annotations

import functools
import importlib.util
import os
from collections.abc import Iterable, Sequence
from typing import Any, Callable, Union

# _logging: the server imports it while it serves; imported now, while the package can be read
# (a process that drops its privileges may no longer reach root's site-packages).
from . import _asgi, _errors, _hooks, _logging, _reload  # noqa: F401
from ._fcgi_wsgi import (
    ClientDisconnected,
    ErrorStream,
    FileWrapper,
    InputStream,
    RequestBodyIncomplete,
    RequestTimeout,
    RequestTooLarge,
    StartResponse,
    __version__,
    request_reload,
    request_stop,
    server_stats,
    settings,
)
from ._fcgi_wsgi import serve as _serve

__all__ = [
    "ClientDisconnected",
    "ErrorStream",
    "FileWrapper",
    "InputStream",
    "RequestBodyIncomplete",
    "RequestTimeout",
    "RequestTooLarge",
    "StartResponse",
    "__version__",
    "list_environment",
    "load_app",
    "request_reload",
    "request_stop",
    "serve_asgi",
    "serve_wsgi",
    "settings",
    "server_stats",
]


def _finish_django_setup() -> None:
    """Let the recipe's ``django.cgi`` run unchanged on modern Django.

    The script names its settings, imports us and Django's ``WSGIHandler`` (in either order) and
    builds ``WSGIHandler()`` without ``django.setup()``, which Django has required since 1.7 once
    a project has apps with models. When the settings are named and Django is installed, we
    complete that setup on import, as ``get_wsgi_application()`` would. If it fails here, the
    same error comes back, clearer, from the script's own Django calls.
    """
    if not os.environ.get("DJANGO_SETTINGS_MODULE") or importlib.util.find_spec("django") is None:
        return
    try:
        import django
        from django.apps import apps

        if not apps.ready:
            django.setup(set_prefix=False)
    except Exception:
        return


_finish_django_setup()

Bind = Union[str, tuple[str, int], None]
Debug = Union[bool, Sequence[str]]


def bind_address(bind: Bind) -> str | None:
    """The core's spelling of ``bind``: a Unix path, ``unix:PATH``, ``host:port`` or ``(host, port)``."""
    if bind is None or isinstance(bind, str):
        return bind
    host, port = bind
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def load_app(spec: str) -> Callable:
    """Imports ``module:attribute`` (``attribute`` defaults to ``application``, as Django names it)."""
    module_name, _, attribute = spec.partition(":")
    app = importlib.import_module(module_name)
    for part in (attribute or "application").split("."):
        app = getattr(app, part)
    return app


def serve_wsgi(
    app: Callable | str,
    bind: Bind = None,
    *,
    workers: int | None = None,
    processes: int | str | None = None,
    max_processes: int | None = None,
    process_idle_timeout: float | None = None,
    max_spawn_rate: int | None = None,
    preload: bool = False,
    reload: bool = False,
    max_requests: int | None = None,
    max_requests_jitter: int | None = None,
    max_rss: int | None = None,
    max_connections: int | None = None,
    multiplex: int | None = None,
    debug: Debug = False,
    force_cgi: bool = False,
    read_timeout: float | None = None,
    write_timeout: float | None = None,
    idle_timeout: float | None = None,
    head_timeout: float | None = None,
    graceful_timeout: float | None = None,
    max_body_bytes: int | None = None,
    max_params_bytes: int | None = None,
    max_param_bytes: int | None = None,
    max_params: int | None = None,
    slow_request_timeout: float | None = None,
    timeout: float | None = None,
    timeout_grace: float | None = None,
    log_level: str | None = None,
    access_logfile: str | None = None,
    access_logformat: str | None = None,
    status_path: str | None = None,
    ping_path: str | None = None,
    status_allow: str | None = None,
    handle_signals: bool = True,
    user: str | None = None,
    group: str | None = None,
    umask: int | str | None = None,
    socket_mode: int | str | None = None,
    socket_owner: str | None = None,
    backlog: int | None = None,
    pid_file: str | None = None,
    on_starting: _hooks.Hook = None,
    post_fork: _hooks.Hook = None,
    worker_exit: _hooks.Hook = None,
    pre_request: _hooks.Hook = None,
    post_request: _hooks.Hook = None,
    interface: str = "wsgi",
    lifespan: str = "auto",
    max_concurrency: int | None = None,
) -> str:
    """Serve ``app`` until SIGTERM, SIGINT or SIGUSR1 (FastCGI), or for one request (CGI).

    ``interface="asgi"`` serves an ASGI 3 app instead: ``serve_asgi``.

    ``bind=None`` serves the listening socket on fd 0 (mod_fcgid, lighttpd, spawn-fcgi), else a
    systemd socket, else one CGI request from the environment and stdin. Requests in flight finish
    before it returns ``"fastcgi"`` or ``"cgi"``.

    ``debug``: ``True`` shows tracebacks of failing requests to every client, a list of addresses
    or networks (``["127.0.0.1", "::1", "10.0.0.0/8"]``) only to clients whose REMOTE_ADDR is in
    it; everyone else gets a short 500 page. Tracebacks always go to ``wsgi.errors`` (the web
    server's error log).

    ``processes`` and ``workers``: worker processes sharing the listener (pre-fork; this process
    supervises them) and threads in each. The defaults, for a WSGI app on a socket this process
    binds or systemd gives it: one process per core and 2 workers in each (the GIL runs one
    thread of a process at a time; README: Sizing workers and processes); on fd 0 (mod_fcgid,
    which runs the processes and sends each one request at a time) 1 process of 1 worker.
    ``"MIN:MAX"`` (or ``max_processes``) makes the pool dynamic, as PHP-FPM's ``pm = dynamic``: a
    process is started (at most ``max_spawn_rate`` a second) while every worker is busy and
    requests wait, up to MAX; one idle for ``process_idle_timeout`` seconds (default 10) is stopped
    while more than MIN run. MIN 0 is ``ondemand``: no process until a request comes.
    ``app`` may be ``"module:attribute"``; with several processes (or no ``processes`` given) it
    is then imported in each process after the fork (before serving, in a lone one), unless
    ``preload`` (a database connection opened at import must not be shared by forks).

    ``reload``: for development. When a source file of an imported module changes, the server
    finishes the requests in flight and re-executes the program on the same listening socket
    (fd 0 or the bound address stays open), so the next request runs the new code. SIGHUP does
    the same at any time. The app is then imported before any fork. With ``processes`` of 2 or
    more on a bound address a reload keeps serving: the supervisor re-executes at once, its new
    processes take the next requests, and the old ones finish theirs, then end.

    Limits: ``max_body_bytes`` (413 beyond; reading past it raises ``RequestTooLarge``; a body
    that ends before CONTENT_LENGTH raises ``RequestBodyIncomplete``, a 400 if uncaught),
    ``read_timeout`` and ``write_timeout`` (seconds a request may wait for the web server, default
    60), ``idle_timeout`` (seconds a kept-alive connection may idle, default 90),
    ``head_timeout`` (seconds a request's BEGIN_REQUEST and params may take to arrive, default 10;
    meanwhile the connection holds no worker), ``graceful_timeout`` (seconds a stop or reload
    waits for requests in flight before it proceeds anyway, default 30), ``max_connections``
    (default 1024), ``multiplex`` (requests at once on one connection), ``max_params_bytes``,
    ``max_param_bytes`` and ``max_params`` (a request's params in all, one name-value pair, and
    their number: 1 MiB, 256 KiB, 4096; a 431 page beyond). A timeout of 0 means no limit; a
    negative one, or 0 where it means nothing, raises ``ValueError``. `docs/SETTINGS.md` lists
    every setting; ``fcgi_wsgi.settings()`` returns the same table.

    Logging: the server's own messages go to the logger ``fcgi_wsgi.error`` (to stderr, in
    gunicorn's shape, unless the program configured a handler for it), at ``log_level`` and above
    (``"debug"``, ``"info"``, ``"warning"``, ``"error"``; default info). ``access_logfile`` writes
    one line per request to a file (``"-"``: stderr), buffered and flushed within a second;
    ``access_logformat`` takes gunicorn's atoms (README: Seeing what it does). Access records also
    go to the logger ``fcgi_wsgi.access`` when it (or ``fcgi_wsgi``) has handlers, as Django's
    ``LOGGING`` or ``logging.config`` give it. ``slow_request_timeout``: a request running past it
    (seconds) is logged once as a warning with the stack of the thread serving it; it goes on.

    Recycling: ``max_requests`` (plus a random 0 to ``max_requests_jitter``) requests, or
    ``max_rss`` MiB of resident memory, and a process is recycled after its requests in flight: a
    worker of ``processes`` is replaced (the new one started first, so no request fails), a lone
    process stops (``max_requests``, as under mod_fcgid) or re-executes on its socket (``max_rss``).

    ``timeout`` (seconds, default off): a request running past it is ended. ``RequestTimeout`` (a
    ``BaseException``, so a broad ``except Exception`` does not swallow it) is raised in the thread
    serving it, so the view unwinds and ``finally`` blocks run; the client gets a 504 if nothing
    was sent. A thread still in the request ``timeout_grace`` seconds later (default 5) is stuck
    where Python cannot reach it (a C call, ``time.sleep``): its stack is logged and its process is
    replaced once its other requests end (within ``graceful_timeout``): a new worker process
    first with ``processes``, else a re-execution on the same socket.

    Hooks (gunicorn's; each a callable or ``"module:function"``): ``on_starting()`` once, before
    serving; ``post_fork(worker)`` in each process before it serves (after the fork; in a lone
    process, once) and ``worker_exit(worker)`` after it served its last request (``worker.pid``);
    ``pre_request(environ)`` before each request and ``post_request(environ, status)`` once its
    response is done (``status`` is the status line, or None if the app never started one).

    Status: a request for ``status_path`` (e.g. ``"/fcgi-status"``, matched against SCRIPT_NAME +
    PATH_INFO) is answered by the server itself with its status page, even while every worker is
    busy: plain text, ``?json``, ``?openmetrics`` or ``?html``, and ``&full`` for every worker
    thread of every process. ``ping_path`` answers ``pong``. Only clients in ``status_allow``
    (comma-separated addresses or networks; default loopback) see them; others get a 404.

    Privileges and the socket: ``user`` and ``group`` (names or ids; needs root) are taken once
    the socket is bound, before an ``app`` given as ``"module:attribute"`` is imported: in this
    process, or with ``processes`` in each worker process (the supervisor keeps its user: it runs
    no request, removes the pid and socket files at the end and re-executes itself for a reload;
    so ``preload`` and ``reload`` with ``processes``, which import the app in the supervisor, are
    refused with ``user``). ``umask`` and ``socket_mode`` are octal (``0o660`` or ``"0660"``);
    ``socket_owner`` is ``"USER:GROUP"``, ``"USER"`` or ``":GROUP"``; ``backlog`` is listen(2)'s;
    ``pid_file`` is written atomically and removed at exit (SIGTERM included).
    """
    if isinstance(processes, str):
        processes, max_processes = pool_size(processes)
    given = {
        "workers": workers,
        "processes": processes,
        "max_processes": max_processes,
        "process_idle_timeout": process_idle_timeout,
        "max_spawn_rate": max_spawn_rate,
        "max_requests": max_requests,
        "max_requests_jitter": max_requests_jitter,
        "max_rss": max_rss,
        "max_connections": max_connections,
        "multiplex": multiplex,
        "force_cgi": force_cgi,
        "read_timeout": read_timeout,
        "write_timeout": write_timeout,
        "idle_timeout": idle_timeout,
        "head_timeout": head_timeout,
        "graceful_timeout": graceful_timeout,
        "max_body_bytes": max_body_bytes,
        "max_params_bytes": max_params_bytes,
        "max_param_bytes": max_param_bytes,
        "max_params": max_params,
        "slow_request_timeout": slow_request_timeout,
        "timeout": timeout,
        "timeout_grace": timeout_grace,
        "log_level": log_level,
        "access_logfile": access_logfile,
        "access_logformat": access_logformat,
        "status_path": status_path,
        "ping_path": ping_path,
        "status_allow": status_allow,
        "handle_signals": handle_signals,
        "user": user,
        "group": group,
        "umask": umask,
        "socket_mode": socket_mode,
        "socket_owner": socket_owner,
        "backlog": backlog,
        "pid_file": pid_file,
    }
    report = functools.partial(_errors.report, show_traceback=_errors.traceback_policy(debug))
    hooks = {"post_fork": _hooks.process_hook(post_fork), "worker_exit": _hooks.process_hook(worker_exit)}
    if interface not in ("wsgi", "asgi"):
        raise ValueError(f"interface must be 'wsgi' or 'asgi', not {interface!r}")
    asgi = interface == "asgi"
    if asgi and (pre_request is not None or post_request is not None):
        raise ValueError("pre_request and post_request are hooks of WSGI requests; an ASGI app wraps itself")
    if asgi and workers is not None:
        # The same thing (requests at once in a process), under the name uvicorn gives it.
        if max_concurrency is not None and max_concurrency != workers:
            raise ValueError("workers and max_concurrency are one setting for an ASGI app: give one")
        max_concurrency, given["workers"] = workers, None
    misplaced = _asgi.given_without_asgi(interface, lifespan, max_concurrency)
    if misplaced is not None:
        raise ValueError(f"{misplaced} is a setting of an ASGI app (interface='asgi')")
    hooked = functools.partial(_hooks.with_request_hooks, pre_request=pre_request, post_request=post_request)
    loader = None
    # Without a process count a WSGI app gets one process per core on a socket the server binds
    # or systemd gives (1 on fd 0, where mod_fcgid runs the processes; the core knows which).
    many = max(processes or 1, max_processes or 0) > 1 or (processes is None and not asgi)
    if isinstance(app, str):
        if user is not None or group is not None:
            if many and (preload or reload):
                raise ValueError(
                    "user and group are taken by the worker processes: preload and reload would import the app "
                    "in the supervisor, which keeps its user (processes=1 serves in one process)"
                )
        if many and not (preload or reload) or user is not None or group is not None:
            # Imported in each worker process, or by the core once the privileges are dropped
            # (never with root's rights).
            name = app
            app, loader = None, (lambda: load_app(name)) if asgi else (lambda: hooked(load_app(name)))
        else:
            app = load_app(app)
    if app is not None and not asgi:
        app = hooked(app)
    runner = _asgi.Runner(app, loader, report, lifespan) if asgi else None
    if reload:
        _reload.watch(request_reload)
    settings = {name: value for name, value in given.items() if value is not None}
    starting = _hooks.resolve(on_starting)
    if starting is not None:
        starting()
    if runner is not None:
        try:
            return _serve(
                None,
                report,
                bind_address(bind),
                settings=settings,
                hooks=hooks,
                asgi_runner=runner,
                max_concurrency=max_concurrency,
            )
        finally:
            # A CGI request started the loop without a serving process's end to stop it.
            runner.stop()
    return _serve(app, report, bind_address(bind), loader=loader, settings=settings, hooks=hooks)


def serve_asgi(app: Callable | str, bind: Bind = None, **settings: Any) -> str:
    """Serve the ASGI 3 app ``app`` (Starlette, FastAPI, Django's ``get_asgi_application()``)
    over FastCGI, or for one CGI request, taking every keyword of ``serve_wsgi`` but its WSGI
    request hooks (``pre_request``, ``post_request``), plus:

    ``lifespan``: ``"auto"`` (default) runs the app's lifespan protocol if it supports it,
    ``"on"`` requires it, ``"off"`` skips it. ``startup`` runs in each serving process before its
    first request (a failure stops the server with the app's message), ``shutdown`` after its
    last; the state the app keeps in ``scope["state"]`` is copied into each request's scope.

    ``max_concurrency`` (default 100, 1 under mod_fcgid; ``workers`` is another name for it):
    requests in flight at once in a process. Each runs as a task on the process's event loop
    (uvloop's when installed), while a thread of the core parks with it and does its I/O (about
    20 KiB each once used); the requests beyond wait for one, as WSGI's wait for a worker, and
    the status page still answers. Raise it for many slow requests (long polls, streams): 1,000
    requests each awaiting a one-second sleep take a little over a second with
    ``max_concurrency=1000``.

    Each request's scope carries every FastCGI param as sent, decoded as WSGI decodes them, in
    ``scope["extensions"]["fastcgi"]["params"]``, and its role in ``...["role"]``. ``receive()``
    reads the socket only when the app awaits it, and gives ``http.disconnect`` when the web
    server aborts the request or goes away; each awaited ``send()`` returns once the socket took
    the bytes. A request timeout (``timeout``) cancels the request's task.
    """
    return serve_wsgi(app, bind, interface="asgi", **settings)


def pool_size(text: str) -> tuple[int, int | None]:
    """``"N"`` or ``"MIN:MAX"`` as (processes, max_processes)."""
    least, _, most = text.partition(":")
    try:
        return int(least), (int(most) if most else None)
    except ValueError:
        raise ValueError(f"processes: expected N or MIN:MAX, not {text!r}") from None


def list_environment(environ: dict, start_response: Callable) -> Iterable[bytes]:
    """A WSGI app that lists its environ as plain text: the recipe's test app."""
    lines = [f"{key}: {environ[key]!r}\n" for key in sorted(environ)]
    body = "".join(lines).encode("utf-8", "backslashreplace")
    start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))])
    return [body]

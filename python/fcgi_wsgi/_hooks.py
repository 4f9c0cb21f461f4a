"""gunicorn's server hooks: ``on_starting()`` before serving, ``post_fork(worker)`` and
``worker_exit(worker)`` around each serving process, ``pre_request(environ)`` and
``post_request(environ, status)`` around each request. Each is a callable or
``"module:function"`` (as a config file names it)."""

from __future__ import annotations

import importlib
import os
import types
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Union

Hook = Union[Callable[..., Any], str, None]


def resolve(hook: Hook) -> Callable[..., Any] | None:
    """The function a hook names (``"module:function"``), or the callable itself."""
    if hook is None or callable(hook):
        return hook
    module_name, _, attribute = hook.partition(":")
    if not attribute:
        raise ValueError(f"a hook is a callable or 'module:function', not {hook!r}")
    function = importlib.import_module(module_name)
    for part in attribute.split("."):
        function = getattr(function, part)
    return function


def worker() -> types.SimpleNamespace:
    """What ``post_fork`` and ``worker_exit`` are told of the process: its ``pid``."""
    return types.SimpleNamespace(pid=os.getpid())


def process_hook(hook: Hook) -> Callable[[], Any] | None:
    """``hook(worker)`` as the server calls it: without arguments, in the serving process."""
    function = resolve(hook)
    return None if function is None else lambda: function(worker())


def with_request_hooks(app: Callable, pre_request: Hook, post_request: Hook) -> Callable:
    """``app`` with ``pre_request(environ)`` before each request and ``post_request(environ,
    status)`` once its response is done (``status`` is None if it never started one)."""
    pre, post = resolve(pre_request), resolve(post_request)
    if pre is None and post is None:
        return app

    def hooked(environ: dict, start_response: Callable) -> Iterable[bytes]:
        status: list[str] = []

        def recording(line: str, headers: list, exc_info: Any = None) -> Callable:
            status[:] = [line]
            return start_response(line, headers, exc_info) if exc_info else start_response(line, headers)

        if pre is not None:
            pre(environ)
        try:
            result = app(environ, recording)
        except BaseException:
            if post is not None:
                post(environ, status[0] if status else None)
            raise
        if post is None:
            return result
        return _Finished(result, lambda: post(environ, status[0] if status else None))

    return hooked


class _Finished:
    """A response iterable that calls ``done`` after its ``close()`` (PEP 3333: the end)."""

    def __init__(self, result: Iterable[bytes], done: Callable[[], Any]):
        self._result, self._done = result, done

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._result)

    def close(self) -> None:
        try:
            close = getattr(self._result, "close", None)
            if close is not None:
                close()
        finally:
            self._done()

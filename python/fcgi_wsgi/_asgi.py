"""The event-loop side of serving an ASGI app: one loop thread per serving process, a task per
request, and the lifespan protocol around them.

The core's taking thread and the porters hold the requests and do their I/O; they reach this
loop through an ``EventBridge`` (a queue and a socket the loop watches), never through the
GIL-taking ``call_soon_threadsafe``. See ``fcgi-python/src/asgi.rs``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import gc
import logging
import sys
import threading
import traceback
from collections.abc import Mapping
from typing import Any, Callable

from ._fcgi_wsgi import FastCgiParams

# The params decode each value when asked: a read-only mapping, as isinstance() checks see it.
Mapping.register(FastCgiParams)

logger = logging.getLogger("fcgi_wsgi.error")

#: What ``--lifespan`` takes, as uvicorn: ``auto`` runs it if the app supports it.
LIFESPAN_MODES = ("auto", "on", "off")

#: Whether asyncio's tasks may start eagerly (Python 3.12).
EAGER = sys.version_info >= (3, 12)

#: How long the lifespan's startup and shutdown may take (seconds).
LIFESPAN_TIMEOUT = 60.0


class LifespanFailure(RuntimeError):
    """The app's lifespan startup failed: the server does not start."""


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop's loop when it is installed, else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def check_lifespan_mode(mode: str) -> None:
    if mode not in LIFESPAN_MODES:
        raise ValueError(f"lifespan must be one of {', '.join(LIFESPAN_MODES)}, not {mode!r}")


def given_without_asgi(interface: str, lifespan: str, max_concurrency: int | None) -> str | None:
    """The name of an ASGI app's own setting given (not left at its default) for an app whose
    interface is not ASGI, if any: ``serve_wsgi`` and ``--check-config`` refuse it alike."""
    if interface == "asgi":
        return None
    if lifespan != "auto":
        return "lifespan"
    return None if max_concurrency is None else "max_concurrency"


class Lifespan:
    """The ASGI lifespan protocol, run on the loop: ``startup`` before the first request,
    ``shutdown`` after the last; ``state`` is shared (copied) into each request's scope."""

    def __init__(self, app: Callable, mode: str) -> None:
        self.app = app
        self.mode = mode
        self.state: dict[str, Any] = {}
        self.running = False

    async def startup(self) -> None:
        if self.mode == "off":
            return
        self.messages: asyncio.Queue = asyncio.Queue()
        self.started = asyncio.Event()
        self.shut_down = asyncio.Event()
        self.failure: str | None = None
        self.task = asyncio.get_running_loop().create_task(self._main())
        await self.messages.put({"type": "lifespan.startup"})
        await self.started.wait()
        if self.failure is not None:
            raise LifespanFailure(self.failure)

    async def shutdown(self) -> None:
        if not self.running:
            return
        await self.messages.put({"type": "lifespan.shutdown"})
        await self.shut_down.wait()
        if self.failure is not None:
            logger.error("ASGI lifespan shutdown failed: %s", self.failure)

    async def _main(self) -> None:
        scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}, "state": self.state}
        try:
            await self.app(scope, self._receive, self._send)
        except BaseException as exc:
            if self.started.is_set():
                logger.error("ASGI lifespan failed", exc_info=exc)
            elif self.mode == "auto":
                logger.info("ASGI lifespan unsupported by the app (%s): serving without it", exc)
            else:
                self.failure = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        finally:
            self.running = False
            self.started.set()
            self.shut_down.set()

    async def _receive(self) -> dict:
        return await self.messages.get()

    async def _send(self, message: dict) -> None:
        kind = message["type"]
        if kind == "lifespan.startup.complete":
            self.running = True
            self.started.set()
        elif kind == "lifespan.startup.failed":
            self.failure = message.get("message", "") or "lifespan.startup.failed"
            self.started.set()
        elif kind == "lifespan.shutdown.complete":
            self.shut_down.set()
        elif kind == "lifespan.shutdown.failed":
            self.failure = message.get("message", "") or "lifespan.shutdown.failed"
            self.shut_down.set()
        else:
            raise ValueError(f"unknown lifespan message {kind!r}")


class ErrorLog:
    """The web server's error log for one request (FCGI_STDERR), as ``wsgi.errors`` is for WSGI:
    ``scope["extensions"]["fastcgi"]["errors"]``. Writing never waits."""

    __slots__ = ("_call",)

    def __init__(self, call: Any) -> None:
        self._call = call

    def write(self, text: str) -> int:
        self._call.write_error(text)
        return len(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        """Nothing to do: what was written goes out with the response, or before it."""


def environ_of(scope: dict) -> dict:
    """What the error report reads of a request (its method, URI, client, error log)."""
    fastcgi = scope["extensions"]["fastcgi"]
    return {**fastcgi["params"], "wsgi.errors": fastcgi["errors"]}


class Runner:
    """Runs an ASGI app on an event loop thread of its own, in each serving process."""

    def __init__(self, app: Callable | None, loader: Callable | None, report: Callable, lifespan: str) -> None:
        self.app = app
        self.loader = loader
        self.report = report
        self.lifespan_mode = lifespan
        check_lifespan_mode(lifespan)  # now, before anything is bound
        self.loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> asyncio.AbstractEventLoop:
        """Loads the app (if given lazily) and starts the loop thread; returns the loop."""
        if self.app is None:
            assert self.loader is not None
            self.app = self.loader()
        self.lifespan = Lifespan(self.app, self.lifespan_mode)
        self.loop = loop = new_event_loop()
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(loop)
            loop.call_soon(ready.set)
            loop.run_forever()

        self.thread = threading.Thread(target=run, name="fcgi-asgi-loop", daemon=True)
        self.thread.start()
        ready.wait()
        return loop

    def _wait(self, coroutine: Any) -> Any:
        """Runs `coroutine` on the loop and waits for its result (from another thread)."""
        assert self.loop is not None
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(LIFESPAN_TIMEOUT)

    def serve(self, bridge: Any) -> None:
        """Runs the lifespan's startup, then takes requests from `bridge`."""
        assert self.loop is not None
        try:
            self._wait(self.lifespan.startup())
        except (LifespanFailure, concurrent.futures.TimeoutError) as e:
            self._halt()
            raise LifespanFailure(f"the ASGI lifespan startup failed: {e or 'it timed out'}") from None
        self.state = self.lifespan.state if self.lifespan.running else None
        # What the app built to start (modules, routes, pools) lives as long as the process:
        # out of the collector's sight, its passes walk only what requests make.
        gc.freeze()
        self.loop.call_soon_threadsafe(self.loop.add_reader, bridge.fileno(), bridge.drain, self.begin)

    def stop(self) -> None:
        """Runs the lifespan's shutdown and stops the loop thread."""
        if self.loop is None:
            return
        try:
            self._wait(self.lifespan.shutdown())
        except concurrent.futures.TimeoutError:
            logger.error("the ASGI lifespan shutdown did not end within %s s", LIFESPAN_TIMEOUT)
        self._halt()

    def _halt(self) -> None:
        """Stops the loop thread; the runner is then stopped for good."""
        assert self.loop is not None
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(LIFESPAN_TIMEOUT)
        self.loop = None

    def begin(self, call: Any) -> None:
        """On the loop: starts the task of a new request. Where asyncio can (3.12), the task's
        first step runs now rather than at the loop's next round: an app that answers without
        awaiting anything is done before this returns."""
        assert self.loop is not None
        if EAGER:
            task = asyncio.Task(self.run(call), loop=self.loop, eager_start=True)  # type: ignore[call-arg]
        else:
            task = self.loop.create_task(self.run(call))
        call.set_task(task)

    async def run(self, call: Any) -> None:
        scope = call.scope(self.state)
        scope["extensions"]["fastcgi"]["errors"] = ErrorLog(call)
        try:
            # receive() and send() return awaitables of their own: done at once when no wait
            # is needed, else a future of the loop.
            await self.app(scope, call.receive, call.send)  # type: ignore[misc]
        except asyncio.CancelledError:
            call.cancelled()
        except BaseException as exc:
            if call.disconnected:
                # The app gave up because its client left (Starlette raises ClientDisconnect).
                logger.debug("%s after the web server went away: %r", scope["path"], exc)
                call.failed(exc, b"")
            else:
                call.failed(exc, self.report(environ_of(scope), exc))
        else:
            call.returned()

    @staticmethod
    def stack_of(task: asyncio.Task) -> str | None:
        """Where `task` waits, down its chain of awaited coroutines, as the slow-request log
        prints a thread's stack."""
        frames = []
        coroutine: Any = task.get_coro()
        while coroutine is not None:
            frame = getattr(coroutine, "cr_frame", None) or getattr(coroutine, "gi_frame", None)
            if frame is None:
                break
            frames.append((frame, frame.f_lineno))
            coroutine = getattr(coroutine, "cr_await", None) or getattr(coroutine, "gi_yieldfrom", None)
        return "".join(traceback.StackSummary.extract(frames).format()) or None

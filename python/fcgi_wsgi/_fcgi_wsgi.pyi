from collections.abc import Iterator
from typing import Any, Callable, TypedDict

__version__: str

class ClientDisconnected(OSError): ...
class RequestTooLarge(OSError): ...
class RequestTimeout(BaseException): ...

class RequestBodyIncomplete(OSError):
    """The body ended before CONTENT_LENGTH: "the request body ended after N of M bytes"."""

class InputStream:
    """``wsgi.input``, and ``fcgi.data`` (a Filter's data stream, ending at FCGI_DATA_LENGTH;
    empty for other roles). What a call returns is copied once from the connection into the
    ``bytes`` it returns, which grows in place; nothing else is buffered beyond one chunk (64 KiB).
    So a line costs its length once: on a body without newlines, ``readline()`` costs the whole
    body (pass ``size`` to bound it). Reads raise ``RequestBodyIncomplete`` when the stream ends
    before its declared length."""

    def read(self, size: int | None = -1) -> bytes: ...
    def readline(self, size: int | None = -1) -> bytes: ...
    def readlines(self, hint: int | None = -1) -> list[bytes]: ...
    def __iter__(self) -> Iterator[bytes]: ...
    def __next__(self) -> bytes: ...

class ErrorStream:
    def write(self, text: str) -> int: ...
    def writelines(self, lines: Any) -> None: ...
    def flush(self) -> None: ...

class StartResponse:
    def __call__(self, status: str, headers: Any, exc_info: Any = None) -> Callable[[bytes], None]: ...
    def write(self, data: bytes) -> None: ...

class AsgiRequest:
    """One ASGI request, between the worker thread holding it and the event loop."""

    disconnected: bool
    def scope(self, state: dict | None = None) -> dict: ...
    def set_task(self, task: Any) -> None: ...
    def receive(self) -> Any: ...
    def send(self, message: dict) -> Any: ...
    def write_error(self, text: str) -> None: ...
    def returned(self) -> None: ...
    def failed(self, error: BaseException, page: bytes) -> None: ...
    def cancelled(self) -> None: ...

class Ready:
    """An awaitable already done: what ``receive()`` and ``send()`` return when they need no wait."""

    def __await__(self) -> Any: ...
    def __next__(self) -> Any: ...

class FastCgiParams:
    """Every FastCGI param of a request as sent, str to str (latin-1), decoded when asked."""

    def __getitem__(self, name: str) -> str: ...
    def __contains__(self, name: object) -> bool: ...
    def __len__(self) -> int: ...
    def __iter__(self) -> Iterator[str]: ...
    def get(self, name: str, default: Any = None) -> Any: ...
    def keys(self) -> list[str]: ...
    def values(self) -> list[str]: ...
    def items(self) -> list[tuple[str, str]]: ...
    def copy(self) -> dict[str, str]: ...

class EventBridge:
    """The way from the worker threads to the event loop."""

    def fileno(self) -> int: ...
    def drain(self, begin: Callable[[AsgiRequest], Any]) -> None: ...

class FileWrapper:
    def __init__(self, filelike: Any, block_size: int = 65536) -> None: ...
    def __iter__(self) -> Iterator[bytes]: ...
    def __next__(self) -> bytes: ...
    def close(self) -> None: ...

class Settings(TypedDict, total=False):
    """The rows of ``settings()``, as ``serve`` takes them."""

    workers: int
    processes: int
    max_processes: int
    process_idle_timeout: float
    max_spawn_rate: int
    max_requests: int
    max_requests_jitter: int
    max_rss: int
    max_connections: int
    multiplex: int
    max_body_bytes: int
    max_params_bytes: int
    max_param_bytes: int
    max_params: int
    read_timeout: float
    write_timeout: float
    idle_timeout: float
    head_timeout: float
    graceful_timeout: float
    slow_request_timeout: float
    timeout: float
    timeout_grace: float
    log_level: str
    access_logfile: str
    access_logformat: str
    status_path: str
    ping_path: str
    status_allow: str
    force_cgi: bool
    handle_signals: bool
    user: str
    group: str
    umask: int | str
    socket_mode: int | str
    socket_owner: str
    backlog: int
    pid_file: str

def serve(
    app: Callable[..., Any] | None,
    report: Callable[[dict, BaseException], bytes],
    bind: str | None = None,
    *,
    loader: Callable[[], Callable[..., Any]] | None = None,
    settings: Settings | None = None,
    hooks: dict[str, Callable[[], Any] | None] | None = None,
    asgi_runner: Any = None,
    max_concurrency: int | None = None,
) -> str: ...
def check_settings(bind: str | None = None, settings: Settings | None = None) -> None:
    """Raises what ``serve`` would raise for ``bind`` and ``settings``, serving nothing."""

def settings() -> list[tuple[str, str, str, str, str]]:
    """The core's settings table: (name, kind, default, what 0 means, doc) for each."""

def server_stats() -> dict | None: ...
def request_stop() -> None: ...
def request_reload() -> None: ...

"""Real ASGI apps for tests/e2e/test_asgi.py: Starlette, FastAPI and Django's async stack, each
with the routes a test drives through nginx. `MARKS` (an environment variable naming a folder)
is where they leave what a test checks from outside: the lifespan's startup and shutdown, a
disconnect seen, a go-ahead awaited by a streamed response."""

# No `from __future__ import annotations`: FastAPI reads the endpoints' annotations at runtime,
# and they name classes local to fastapi_app().
import asyncio
import hashlib
import os
from pathlib import Path
from typing import Optional

MARKS = Path(os.environ.get("ASGI_TEST_MARKS", "/tmp"))


def mark(name: str, text: str) -> None:
    (MARKS / name).write_text(text)


async def until_marked(name: str, within: float = 30.0) -> bool:
    """Waits (without blocking the loop) until the test leaves the mark `name`."""
    for _ in range(int(within / 0.02)):
        if (MARKS / name).exists():
            return True
        await asyncio.sleep(0.02)
    return False


def starlette_app():
    from contextlib import asynccontextmanager

    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, PlainTextResponse, StreamingResponse
    from starlette.routing import Route

    @asynccontextmanager
    async def lifespan(app):
        mark("startup", f"{os.getpid()}\n")
        yield {"greeting": "hello from the lifespan"}
        mark("shutdown", f"{os.getpid()}\n")

    async def json_echo(request: Request):
        return JSONResponse({"method": request.method, "query": dict(request.query_params), "path": request.url.path})

    async def upload(request: Request):
        form = await request.form()
        upload = form["file"]
        digest, size = hashlib.sha256(), 0
        while chunk := await upload.read(1 << 16):
            digest.update(chunk)
            size += len(chunk)
        return PlainTextResponse(f"{form['name']} {size} {digest.hexdigest()}")

    async def stream(request: Request):
        async def pieces():
            yield b"first\n"
            # The second piece waits for the test to have received the first: delivery is
            # incremental, or the test times out.
            yield b"second\n" if await until_marked("go-on") else b"never told\n"

        return StreamingResponse(pieces(), media_type="text/plain")

    async def state(request: Request):
        return PlainTextResponse(request.state.greeting)

    async def sleep(request: Request):
        await asyncio.sleep(float(request.query_params.get("s", "1")))
        return PlainTextResponse("slept")

    async def disconnect(request: Request):
        # Waits for http.disconnect (the client leaves); then leaves a mark.
        while not await request.is_disconnected():
            await asyncio.sleep(0.05)
        mark("disconnected", "yes\n")
        return PlainTextResponse("gone")

    routes = [
        Route("/json", json_echo),
        Route("/upload", upload, methods=["POST"]),
        Route("/stream", stream),
        Route("/state", state),
        Route("/sleep", sleep),
        Route("/disconnect", disconnect),
    ]
    return Starlette(routes=routes, lifespan=lifespan)


def fastapi_app():
    from fastapi import FastAPI, File, Form, UploadFile
    from pydantic import BaseModel

    api = FastAPI()

    class Item(BaseModel):
        name: str
        price: float

    @api.get("/items/{item_id}")
    async def read_item(item_id: int, q: Optional[str] = None):  # noqa: UP045 (FastAPI reads it at runtime)
        return {"item_id": item_id, "q": q}

    @api.post("/items")
    async def create_item(item: Item):
        return {"name": item.name, "price_with_tax": round(item.price * 1.2, 2)}

    @api.post("/upload")
    async def upload(name: str = Form(...), file: UploadFile = File(...)):  # noqa: B008 (FastAPI's idiom)
        digest, size = hashlib.sha256(), 0
        while chunk := await file.read(1 << 16):
            digest.update(chunk)
            size += len(chunk)
        return {"name": name, "size": size, "sha256": digest.hexdigest()}

    return api


def django_app():
    import django
    from django.conf import settings

    if not settings.configured:
        settings.configure(
            DEBUG=False,
            SECRET_KEY="asgi-tests",
            ALLOWED_HOSTS=["*"],
            ROOT_URLCONF=__name__,
            MIDDLEWARE=[],
            INSTALLED_APPS=[],
        )
        django.setup()
    from django.core.asgi import get_asgi_application

    return get_asgi_application()


async def django_hello(request):
    from django.http import HttpResponse

    await asyncio.sleep(0.01)
    return HttpResponse(f"async view, {request.method} {request.path}", content_type="text/plain")


async def django_stream(request):
    from django.http import StreamingHttpResponse

    async def pieces():
        yield b"first\n"
        yield b"second\n" if await until_marked("go-on") else b"never told\n"

    return StreamingHttpResponse(pieces(), content_type="text/plain")


def _urlpatterns():
    try:
        from django.urls import path
    except ImportError:
        return []
    return [path("hello", django_hello), path("stream", django_stream)]


urlpatterns = _urlpatterns()
#: `asgi_frameworks:starlette` and the others, built when first named (PEP 562).
FACTORIES = {"starlette": starlette_app, "fastapi": fastapi_app, "django": django_app}


def __getattr__(name: str):
    if name in FACTORIES:
        app = FACTORIES[name]()
        globals()[name] = app
        return app
    raise AttributeError(name)

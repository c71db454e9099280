"""The FastAPI application: routes, JSON errors, the upload limit, the offline page and API docs.

Example:
    >>> import polygraft, tempfile
    >>> from fastapi.testclient import TestClient
    >>> from polygraft.model_io import save_model
    >>> from polygraft.serve.app import create_app
    >>> from polygraft.serve.backends import load_backend
    >>> task = polygraft.create_task("classification", backbone="toy", label_names=["no", "yes"],
    ...                              backbone_options={"in_features": 2})
    >>> backend = load_backend(save_model(task, tempfile.mkdtemp()), name="toy")
    >>> with TestClient(create_app([backend])) as client:
    ...     client.post("/v1/models/toy/predict", json={"x": [0.5, 1.0]}).json()["predictions"][0]["label"] in {"no", "yes"}
    True
"""

# no ``from __future__ import annotations`` here: FastAPI reads the route functions' annotations (Request), which
# are local names inside create_app, so they must be evaluated where the routes are defined
import asyncio
import time
from collections.abc import Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from polygraft.serve.requests import RequestError, read_examples
from polygraft.serve.settings import ServeSettings

PAGE_DIR = Path(__file__).parent / "page"


class UploadLimit:
    """ASGI middleware: a request body above ``limit`` bytes gets 413, by its Content-Length before anything is read,
    else as soon as the bytes received pass the limit (the body is read up to the limit, then handed on)."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await _too_large(send, int(declared), self.limit)
            return
        messages, received = [], 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            received += len(message.get("body", b""))
            if received > self.limit:
                await _too_large(send, received, self.limit)
                return
            if not message.get("more_body", False):
                break
        replay = iter(messages)

        async def replayed() -> dict[str, Any]:
            return next(replay, None) or await receive()

        await self.app(scope, replayed, send)


async def _too_large(send: Any, size: int, limit: int) -> None:
    import json

    body = json.dumps({"error": {"type": "too_large", "message": f"the request body ({size:,} bytes) is above the "
                                 f"server's limit of {limit:,} bytes (--max-upload-mb)"}}).encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def create_app(backends: Sequence[Any], settings: ServeSettings | None = None) -> Any:
    """The ASGI app serving ``backends`` (see :mod:`polygraft.serve.backends`) with ``settings``."""
    from fastapi import FastAPI, Request
    from fastapi.openapi.docs import get_swagger_ui_html
    from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
    from fastapi.staticfiles import StaticFiles

    from polygraft.errors import PolygraftError
    from polygraft.serve.batching import MicroBatcher

    settings = settings or ServeSettings()
    models = {backend.name: backend for backend in backends}
    batchers: dict[str, MicroBatcher] = {}
    started = time.time()

    @asynccontextmanager
    async def lifespan(_: Any) -> Any:
        for name, backend in models.items():
            batchers[name] = MicroBatcher(backend, max_batch=settings.max_batch, max_wait_ms=settings.max_wait_ms)
        yield
        for batcher in batchers.values():
            await batcher.close()

    app = FastAPI(title="polygraft serve", version="1", lifespan=lifespan, docs_url=None, redoc_url=None,
                  description="Predictions from models trained with polygraft. POST JSON text or multipart files to "
                              "/v1/models/{name}/predict, or to /v1/models/{name}/explain for the prediction's "
                              "explanation.")

    app.state.backends = models
    app.state.batchers = batchers

    @app.exception_handler(RequestError)
    async def request_error(_: Request, exc: RequestError) -> JSONResponse:
        return JSONResponse(exc.to_dict(), status_code=exc.status)

    @app.get("/health", summary="Liveness and the models served")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "models": sorted(models), "uptime_s": round(time.time() - started, 1)}

    @app.get("/v1/models", summary="The models served, with their task, input kind and labels")
    async def list_models() -> dict[str, Any]:
        return {"models": [dict(backend.describe(), batches=batchers[name].batches if name in batchers else 0,
                                examples=batchers[name].examples if name in batchers else 0)
                           for name, backend in models.items()]}

    def served(name: str) -> Any:
        backend = models.get(name)
        if backend is None:
            from polygraft.options import closest

            near = closest(name, list(models))
            raise RequestError(404, f"no model named {name!r}" + (f"; did you mean {near[0]!r}?" if near else "")
                               + f" Served: {', '.join(sorted(models))}", kind="unknown_model")
        return backend

    async def prepared(backend: Any, examples: list[dict[str, Any]]) -> list[dict[str, Any]]:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(None, lambda: [backend.prepare(e) for e in examples])
        except PolygraftError as exc:
            raise RequestError(400, f"invalid input: {exc}", kind="invalid_input") from None
        except (TypeError, ValueError) as exc:
            raise RequestError(400, f"invalid input: {type(exc).__name__}: {exc}", kind="invalid_input") from None

    @app.post("/v1/models/{name}/predict", summary="Predict: JSON {input_key: value} / {inputs: [...]}, or "
              "multipart files under 'file'")
    async def predict(name: str, request: Request) -> dict[str, Any]:
        backend = served(name)
        examples = await read_examples(request, backend, settings.max_upload_bytes)
        items = await prepared(backend, examples)
        begin = time.perf_counter()
        try:
            predictions = await batchers[name].submit(items, timeout=settings.timeout_s)
        except asyncio.TimeoutError:
            raise RequestError(504, f"no answer within {settings.timeout_s:g} s (--timeout); the server is busy or the "
                                    "input is very large", kind="timeout") from None
        return {"model": name, "backend": backend.kind, "predictions": predictions,
                "latency_ms": round(1000 * (time.perf_counter() - begin), 2)}

    @app.post("/v1/models/{name}/explain", summary="Explain one input's prediction (polygraft explain): the body of "
              "predict, one example; ?method=integrated-gradients|gradcam|occlusion&target=LABEL (both optional)")
    async def explain(name: str, request: Request, method: str | None = None,
                      target: str | None = None) -> dict[str, Any]:
        from polygraft.serve.explaining import explain_example

        backend = served(name)
        examples = await read_examples(request, backend, settings.max_upload_bytes)
        if len(examples) != 1:
            raise RequestError(422, f"explain takes one example per request, got {len(examples)}",
                               kind="invalid_input")
        await prepared(backend, examples)  # a bad input gets predict's error
        begin = time.perf_counter()
        try:  # no timeout: an explanation takes seconds (one map per word, box or character)
            body = await asyncio.get_running_loop().run_in_executor(
                None, lambda: explain_example(backend, examples[0], method=method or None, target=target or None))
        except PolygraftError as exc:
            raise RequestError(422, str(exc), kind="cannot_explain") from None
        return {"model": name, **body, "latency_ms": round(1000 * (time.perf_counter() - begin), 2)}

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(PAGE_DIR / "index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=PAGE_DIR), name="static")
    swagger = _swagger_dir()
    if swagger is not None:
        app.mount("/docs-assets", StaticFiles(directory=swagger), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        if swagger is None:
            return HTMLResponse("<p>Swagger UI is not installed (pip install swagger-ui-bundle); the API is described "
                                "at <a href='/openapi.json'>/openapi.json</a>.</p>")
        return get_swagger_ui_html(openapi_url="/openapi.json", title="polygraft serve — API",
                                   swagger_js_url="/docs-assets/swagger-ui-bundle.js",
                                   swagger_css_url="/docs-assets/swagger-ui.css",
                                   swagger_favicon_url="/docs-assets/favicon-32x32.png")

    @app.exception_handler(404)
    async def not_found(request: Request, _: Exception) -> JSONResponse:
        return JSONResponse({"error": {"type": "not_found", "message": f"no route {request.url.path}; see /docs"}},
                            status_code=404)

    @app.exception_handler(405)
    async def wrong_method(request: Request, _: Exception) -> JSONResponse:
        return JSONResponse({"error": {"type": "method_not_allowed", "message": f"{request.method} is not allowed on "
                                       f"{request.url.path}; see /docs"}}, status_code=405)

    return UploadLimit(app, settings.max_upload_bytes)


def _swagger_dir() -> Path | None:
    try:
        import swagger_ui_bundle
    except ImportError:
        return None
    return Path(swagger_ui_bundle.swagger_ui_path)


def run_server(backends: Sequence[Any], settings: ServeSettings) -> None:
    """Serve until interrupted (uvicorn, one process)."""
    import uvicorn

    uvicorn.run(create_app(backends, settings), host=settings.host, port=settings.port, log_level="info",
                access_log=False)

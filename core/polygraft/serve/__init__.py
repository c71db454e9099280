"""``polygraft serve RUN [RUN ...]``: trained models behind a small HTTP API and an offline web page.

FastAPI + uvicorn on 127.0.0.1 by default. ``POST /v1/models/{name}/predict`` takes JSON text (``{"text": ...}``,
or ``{"inputs": [{"text": ...}, ...]}`` for a batch) or multipart image/audio uploads (field ``file``, repeatable);
``POST /v1/models/{name}/explain`` explains one such input (:mod:`polygraft.serve.explaining`, the page's Explain
button); ``GET /v1/models`` lists the models, ``GET /health`` answers liveness, ``/docs`` and ``/openapi.json``
describe the API (Swagger UI served from the ``swagger-ui-bundle`` package, no CDN), ``/`` is the web page.
Concurrent requests are micro-batched (:mod:`polygraft.serve.batching`), each with a timeout; uploads have a size
limit; a bad input gets a 4xx JSON error naming the problem and the server goes on serving.
"""

from __future__ import annotations

from polygraft.serve.settings import ServeSettings

__all__ = ["ServeSettings"]

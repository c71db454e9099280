"""Turning an HTTP request into raw examples, with 4xx errors that name the problem.

JSON: one example ``{"text": "..."}`` (the model's input key) or a batch ``{"inputs": [{...}, ...]}``; multipart:
one or more files under ``file`` (images, audio), read by the model's own preprocessor (which refuses a text file
sent as audio or an undecodable image with a message naming it), and optionally ``text`` fields.

Example:
    >>> from polygraft.serve.requests import examples_from_json
    >>> examples_from_json({"inputs": [{"text": "good"}, {"text": "bad"}]}, input_key="text")
    [{'text': 'good'}, {'text': 'bad'}]
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

MAX_EXAMPLES = 256


class RequestError(Exception):
    """A request the server refuses: HTTP ``status`` and a message that says what to send instead."""

    def __init__(self, status: int, message: str, *, kind: str = "bad_request") -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.kind = kind

    def to_dict(self) -> dict[str, Any]:
        return {"error": {"type": self.kind, "message": self.message}}


def _example(value: Any, input_key: str, index: int | None = None) -> dict[str, Any]:
    where = "" if index is None else f"inputs[{index}]: "
    if not isinstance(value, Mapping):
        raise RequestError(422, f"{where}an example is a JSON object such as {{{input_key!r}: ...}}, got "
                                f"{type(value).__name__}", kind="invalid_input")
    unknown = sorted(set(value) - {input_key})
    if unknown:
        raise RequestError(422, f"{where}unknown field {unknown[0]!r}: this model reads {input_key!r} only",
                           kind="unknown_field")
    if input_key not in value:
        raise RequestError(422, f"{where}missing field {input_key!r} (the model's input)", kind="invalid_input")
    return {input_key: value[input_key]}


def examples_from_json(body: Any, *, input_key: str) -> list[dict[str, Any]]:
    """Raw examples from a parsed JSON body (one example, or ``{"inputs": [...]}``)."""
    if isinstance(body, Mapping) and "inputs" in body:
        extra = sorted(set(body) - {"inputs"})
        if extra:
            raise RequestError(422, f"unknown field {extra[0]!r} beside 'inputs'", kind="unknown_field")
        inputs = body["inputs"]
        if not isinstance(inputs, list) or not inputs:
            raise RequestError(422, "'inputs' must be a non-empty list of examples", kind="invalid_input")
        if len(inputs) > MAX_EXAMPLES:
            raise RequestError(413, f"{len(inputs)} examples in one request; send at most {MAX_EXAMPLES}",
                               kind="too_large")
        return [_example(value, input_key, index) for index, value in enumerate(inputs)]
    return [_example(body, input_key)]


async def read_examples(request: Any, backend: Any, limit: int) -> list[dict[str, Any]]:
    """The raw examples of a predict request (JSON or multipart), checked."""
    import json

    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "application/json":
        if backend.input_kind in ("image", "audio"):  # a JSON string would name a file on the server: never opened
            raise RequestError(415, f"this model reads {backend.input_kind}: upload the file as multipart/form-data "
                                    "under 'file' (curl -F file=@clip.wav)", kind="unsupported_media_type")
        raw = await request.body()
        if not raw.strip():
            raise RequestError(400, "empty body: send JSON such as {\"" + backend.input_key + "\": ...}",
                               kind="empty_body")
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise RequestError(400, f"the body is not valid JSON ({exc})", kind="invalid_json") from None
        return examples_from_json(body, input_key=backend.input_key)
    if content_type in ("multipart/form-data", "application/x-www-form-urlencoded"):
        return await _form_examples(request, backend, limit)
    if not content_type:
        raise RequestError(400, "empty body or no Content-Type: send application/json or multipart/form-data",
                           kind="empty_body")
    raise RequestError(415, f"unsupported Content-Type {content_type!r}: send application/json (text) or "
                            "multipart/form-data (files under 'file')", kind="unsupported_media_type")


async def _form_examples(request: Any, backend: Any, limit: int) -> list[dict[str, Any]]:
    form = await request.form(max_files=MAX_EXAMPLES, max_fields=MAX_EXAMPLES, max_part_size=limit)
    unknown = sorted(set(form.keys()) - {"file", backend.input_key})
    if unknown:
        raise RequestError(422, f"unknown form field {unknown[0]!r}: send files under 'file'"
                                + (f" or {backend.input_key!r}" if backend.input_kind == "text" else ""),
                           kind="unknown_field")
    examples: list[dict[str, Any]] = []
    for key, value in form.multi_items():
        if hasattr(value, "read"):
            data = await value.read()
            if not data:
                raise RequestError(400, f"the uploaded file {value.filename!r} is empty", kind="empty_body")
            examples.append(read_upload(backend, data, value.filename or "upload"))
        elif key == backend.input_key:
            examples.append({backend.input_key: value})
    if not examples:
        raise RequestError(400, "no file under 'file' (and no input field): upload an image or audio file",
                           kind="empty_body")
    return examples


def read_upload(backend: Any, data: bytes, filename: str) -> dict[str, Any]:
    """The model's raw example from uploaded bytes: written to a temporary file its preprocessor's reader opens."""
    from polygraft.errors import PolygraftError

    if backend.input_kind == "text":
        try:
            return {backend.input_key: data.decode("utf-8")}
        except UnicodeDecodeError:
            raise RequestError(400, f"{filename!r} is not UTF-8 text", kind="invalid_input") from None
    suffix = Path(filename).suffix[:16]
    with tempfile.NamedTemporaryFile(suffix=suffix) as handle:
        handle.write(data)
        handle.flush()
        try:
            example = backend.read_file(handle.name)
        except PolygraftError as exc:
            message = str(exc).replace(handle.name, filename)
            raise RequestError(400, f"cannot read {filename!r} as {backend.input_kind}: {message}",
                               kind="invalid_input") from None
    example.pop("_origin", None)
    return _loaded(example)


def _loaded(example: dict[str, Any]) -> dict[str, Any]:
    """Make sure nothing in the example still reads the (deleted) temporary file."""
    for value in example.values():
        load = getattr(value, "load", None)
        if callable(load):
            load()
    return example

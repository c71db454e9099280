"""Stable hashes, one home for all of them: canonical JSON, digests, object-state and file fingerprints, versions.

* :func:`canonical_json` / :func:`digest`: compact key-sorted JSON and its sha256, the text every other
  fingerprint hashes (cache keys, recipe fingerprints, generated-data keys).
* :func:`state_fingerprint`: a stable text for the state of a pipeline. A prepared example depends on the raw
  example, the pipeline's settings (label names, keys...) and its preprocessor: the walk covers plain Python state
  (numbers, strings, containers, tensors, arrays and the ``__dict__`` of plain objects) and asks every object it
  meets below the top that has its own ``fingerprint()`` method (a preprocessor, a nested pipeline) for it.
  Anything it cannot describe faithfully (an open file, a model, a library object) makes the whole fingerprint
  ``None``: unknown, so the trainer never trusts a cache on disk for it.
* :func:`files_fingerprint`: what a file-backed data source's ``fingerprint()`` returns.
* :func:`versions`: the installed versions behind some objects (cache keys, saved models).

This module is the bottom layer: it imports only the standard library (torch and NumPy only when already loaded).

Example:
    >>> from polygraft.fingerprint import state_fingerprint
    >>> class Pipe:
    ...     def __init__(self, labels): self.labels = labels
    >>> state_fingerprint(Pipe(["a", "b"])) == state_fingerprint(Pipe(["a", "b"]))
    True
    >>> state_fingerprint(Pipe(["a", "b"])) == state_fingerprint(Pipe(["b", "a"]))
    False
    >>> state_fingerprint(Pipe(open(__file__))) is None
    True
"""

from __future__ import annotations

import enum
import functools
import hashlib
import importlib.metadata
import io
import json
import sys
import types
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

MAX_DEPTH = 12


class _Unknown(Exception):
    """Raised inside the walk for a value that cannot be described."""


def canonical_json(value: Any) -> str:
    """Compact, key-sorted JSON (the text every fingerprint hashes)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def digest(value: Any) -> str:
    """sha256 (hex) of ``value``'s canonical JSON, or of ``value`` itself when it is bytes."""
    data = value if isinstance(value, bytes) else canonical_json(value).encode()
    return hashlib.sha256(data).hexdigest()


def state_fingerprint(obj: Any) -> str | None:
    """sha256 of ``obj``'s type and state, or ``None`` when some part of it cannot be described."""
    try:
        return digest(_describe(obj, 0))
    except _Unknown:
        return None


def _describe(value: Any, depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise _Unknown("too deep")
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return {"float": value.hex()}
    if isinstance(value, enum.Enum):
        return {"enum": _qualname(type(value)), "value": _describe(value.value, depth + 1)}
    own = getattr(type(value), "fingerprint", None) if depth > 0 else None
    if callable(own) and not isinstance(value, type):  # a preprocessor or nested pipeline says it itself
        fingerprint = value.fingerprint()
        if fingerprint is None:
            raise _Unknown(type(value).__name__)
        return {"fingerprinted": _qualname(type(value)), "fingerprint": fingerprint}
    if isinstance(value, list | tuple):
        return {type(value).__name__: [_describe(v, depth + 1) for v in value]}
    if isinstance(value, set | frozenset):
        return {"set": sorted(canonical_json(_describe(v, depth + 1)) for v in value)}
    if isinstance(value, Mapping):
        items = sorted((canonical_json(_describe(k, depth + 1)), _describe(v, depth + 1)) for k, v in value.items())
        return {"mapping": _qualname(type(value)), "items": items}
    if isinstance(value, types.FunctionType | types.BuiltinFunctionType | type):
        return {"callable": _qualname(value)}
    array = _array_bytes(value)
    if array is not None:
        return {"array": array}
    if isinstance(value, types.ModuleType) or not hasattr(value, "__dict__") or _is_library_object(value):
        raise _Unknown(type(value).__name__)
    state = value.__getstate__() if hasattr(value, "__getstate__") else value.__dict__
    state = {} if state is None else state
    if not isinstance(state, Mapping):
        raise _Unknown(type(value).__name__)
    return {"object": _qualname(type(value)), "state": _describe(dict(state), depth + 1)}


def _array_bytes(value: Any) -> str | None:
    """A digest of a tensor or NumPy array's dtype, shape and values (``None`` for anything else)."""
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(value, torch.Tensor):
        tensor = value.detach().cpu().contiguous()
        header = f"{tensor.dtype}{tuple(tensor.shape)}".encode()
        return hashlib.sha256(header + tensor.view(-1).view(torch.uint8).numpy().tobytes()).hexdigest()
    numpy = sys.modules.get("numpy")
    if numpy is not None and isinstance(value, numpy.ndarray) and value.dtype != object:
        header = f"{value.dtype}{value.shape}".encode()
        return hashlib.sha256(header + numpy.ascontiguousarray(value).tobytes()).hexdigest()
    return None


def _is_library_object(value: Any) -> bool:
    """Open files and objects of torch (modules, generators...) are not plain settings."""
    if isinstance(value, io.IOBase):
        return True
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(value, torch.nn.Module | torch.Generator)


def _qualname(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', type(obj).__qualname__)}"


def files_fingerprint(settings: Any, files: Iterable[tuple[str | Path, Any]]) -> str | None:
    """``DataSource.fingerprint`` of a source that reads files: sha256 of its reading ``settings`` and, for each
    ``(path, what the source attaches to it)`` (label, origin, crop...), the path with its size and modification
    time; ``None`` when a file cannot be examined (its error comes when the file is read).

    Example:
        >>> import tempfile, pathlib
        >>> file = pathlib.Path(tempfile.mkdtemp()) / "a.txt"
        >>> _ = file.write_text("one")
        >>> before = files_fingerprint({"max_pixels": 10}, [(file, "label-a")])
        >>> before == files_fingerprint({"max_pixels": 10}, [(file, "label-a")])
        True
        >>> _ = file.write_text("three")
        >>> before == files_fingerprint({"max_pixels": 10}, [(file, "label-a")])
        False
    """
    hasher = hashlib.sha256(canonical_json(settings).encode())
    for path, attached in files:
        try:
            stat = Path(path).stat()
        except OSError:
            return None
        hasher.update(canonical_json([str(path), attached, stat.st_size, stat.st_mtime_ns]).encode())
    return hasher.hexdigest()


def versions(*objects: Any) -> dict[str, str]:
    """Installed versions of the distributions that define ``objects``' classes, plus polygraft and torch.

    A plugin upgrade may change what its preprocessing produces, so cached examples are keyed by these.
    """
    from polygraft.version import __version__

    found = {"polygraft": __version__}
    torch = sys.modules.get("torch")
    if torch is not None:
        found["torch"] = torch.__version__
    for obj in objects:
        module = (obj if isinstance(obj, type) else type(obj)).__module__
        top = module.split(".", 1)[0]
        for dist in _distributions().get(top, []):
            found[dist] = _version(dist)
    return found


@functools.cache
def _distributions() -> dict[str, list[str]]:
    return dict(importlib.metadata.packages_distributions())


@functools.cache
def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"

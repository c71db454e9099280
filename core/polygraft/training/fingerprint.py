"""Fingerprints for the input cache: a stable text for the state of a pipeline, and the versions behind it.

A prepared example depends on the raw example, the pipeline's settings (label names, keys...) and its
preprocessor. :func:`state_fingerprint` walks a pipeline's plain Python state (numbers, strings, containers,
tensors, arrays and the ``__dict__`` of plain objects) and asks every :class:`~polygraft.interfaces.Preprocessor`
it meets for its own :meth:`~polygraft.interfaces.Preprocessor.fingerprint`. Anything it cannot describe
faithfully (an open file, a model, a library object) makes the whole fingerprint ``None``: unknown, so the trainer
never trusts a cache on disk for it.

Example:
    >>> from polygraft.training.fingerprint import state_fingerprint
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
import json
import sys
import types
from collections.abc import Mapping
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
    from polygraft.interfaces.preprocessor import Preprocessor

    if depth > MAX_DEPTH:
        raise _Unknown("too deep")
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return {"float": value.hex()}
    if isinstance(value, enum.Enum):
        return {"enum": _qualname(type(value)), "value": _describe(value.value, depth + 1)}
    if isinstance(value, Preprocessor):
        fingerprint = value.fingerprint()
        if fingerprint is None:
            raise _Unknown(type(value).__name__)
        return {"preprocessor": _qualname(type(value)), "fingerprint": fingerprint}
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
    """Objects of torch (modules, generators...) and of other libraries are not plain settings."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(value, torch.nn.Module | torch.Generator)


def _qualname(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', type(obj).__qualname__)}"


def versions(*objects: Any) -> dict[str, str]:
    """Installed versions of the distributions that define ``objects``' classes, plus polygraft and torch.

    A plugin upgrade may change what its preprocessing produces, so cached examples are keyed by these.
    """
    import polygraft

    found = {"polygraft": polygraft.__version__}
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

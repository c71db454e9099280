"""Reading every training target of a data source, without decoding its media where the source can help.

Tasks that learn from their targets before training (a regression task's scaler, automatic class weights,
the labels of a multi-label task) read them here. A source may offer ``target_values(key)``: ``(value, origin)``
per example, read from its index rather than by decoding every image and clip (``multimodal-manifest`` does);
subset views pass the question to their parent. Otherwise every example is read once.

Example:
    >>> from polygraft.interfaces import ListSource
    >>> from polygraft.tasks.targets import target_values
    >>> target_values(ListSource([{"x": [0.0], "label": 2.5, "_origin": "a.csv:2"}]), "label")
    [(2.5, 'a.csv:2')]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

MISSING = object()
"""The value of an example that has no target under the key."""


def target_values(source: Any, key: str) -> list[tuple[Any, str | None]]:
    """``(target or MISSING, origin)`` of every example of ``source`` under ``key``."""
    fast = cheap_target_values(source, key)
    if fast is not None:
        return fast
    result = []
    for index in range(len(source)):
        example = source[index]
        result.append((example.get(key, MISSING), example.get("_origin")))
    return result


def cheap_target_values(source: Any, key: str) -> list[tuple[Any, str | None]] | None:
    """What :func:`target_values` returns when it costs no decoding (the source's own ``target_values``, or an
    in-memory source's examples), else ``None``."""
    fast = _fast(source, key, depth=0)
    if fast is None and getattr(source, "storage", None) == "memory":
        return [(example.get(key, MISSING), example.get("_origin")) for example in source]
    return fast


def _fast(source: Any, key: str, *, depth: int) -> list[tuple[Any, str | None]] | None:
    if depth > 8:
        return None
    own = getattr(source, "target_values", None)
    if callable(own):
        values = own(key)
        if values is not None:
            return list(values)
    parent, indices = getattr(source, "parent", None), getattr(source, "indices", None)
    if parent is not None and isinstance(indices, Sequence):
        values = _fast(parent, key, depth=depth + 1)
        return None if values is None else [values[i] for i in indices]
    return None


__all__ = ["MISSING", "cheap_target_values", "target_values"]

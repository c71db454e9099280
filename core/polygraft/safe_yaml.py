"""Reading YAML that a person (or an attacker) wrote: ``safe_load`` plus limits and duplicate-key detection.

* Only plain data: the safe loader (C-accelerated when libyaml is there) never constructs Python objects.
* A file larger than ``MAX_BYTES`` (1 MB: recipes are a few hundred bytes) is refused before it is parsed.
* A document whose aliases expand to more than ``MAX_VALUES`` values (the "billion laughs": 845 bytes of anchors
  that expand to 387 million items) is refused before anything copies it.
* A key given twice in one mapping is an error naming the key and both lines (YAML's default is that the last one
  silently wins, so a second ``trainer:`` section would replace the first).

Example:
    >>> from polygraft.safe_yaml import loads
    >>> loads("trainer: {lr: 0.1}\\nseed: 3\\n")
    {'trainer': {'lr': 0.1}, 'seed': 3}
    >>> loads("lr: 1\\nlr: 2\\n", where="r.yaml")
    Traceback (most recent call last):
    ...
    polygraft.errors.ConfigError: r.yaml:2: duplicate key 'lr' (first at line 1); give each key once
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from polygraft.errors import ConfigError

MAX_BYTES = 1_000_000
MAX_VALUES = 100_000

_Base: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _DuplicateKey(Exception):
    def __init__(self, key: Any, first: int, again: int) -> None:
        super().__init__(key)
        self.key, self.first, self.again = key, first, again


class _StrictLoader(_Base):  # type: ignore[misc,valid-type]
    """The safe loader, refusing a key given twice in one mapping."""

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            try:
                if key in seen:
                    raise _DuplicateKey(key, seen[key], line)
            except TypeError:  # an unhashable key: the base loader reports it
                continue
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


def loads(text: str, *, where: str = "YAML", max_values: int = MAX_VALUES) -> Any:
    """Parse ``text`` (one document) with the checks of the module docstring; errors name ``where``."""
    try:
        value = yaml.load(text, Loader=_StrictLoader)
    except _DuplicateKey as exc:
        raise ConfigError(f"{where}:{exc.again}: duplicate key {exc.key!r} (first at line {exc.first}); give each "
                          "key once") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where}: invalid YAML: {exc}") from None
    _check_expansion(value, where, max_values)
    return value


def load_file(path: str | Path, *, max_bytes: int = MAX_BYTES, max_values: int = MAX_VALUES) -> Any:
    """Read and parse the YAML file at ``path`` (refusing files over ``max_bytes`` before parsing them)."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise ConfigError(f"{path}: {size / 1e6:,.1f} MB of YAML; files over {max_bytes / 1e6:g} MB are refused "
                              "(a recipe is a few hundred bytes: is this the right file?)")
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read it: {exc}") from None
    return loads(text, where=str(path), max_values=max_values)


def _check_expansion(value: Any, where: str, budget: int) -> None:
    """Count the values a full copy of ``value`` would hold (shared aliases counted each time they are reached),
    stopping as soon as the budget is spent."""
    stack, count = [value], 0
    while stack:
        item = stack.pop()
        count += 1
        if count > budget:
            raise ConfigError(f"{where}: the YAML expands to more than {budget:,} values (anchors and aliases "
                              "repeated inside each other); refusing it")
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)

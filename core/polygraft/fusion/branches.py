"""The ``branches:`` of a fusion backbone: reading and checking them, and how a branch's fields become its example.

A branch is ``{backbone: NAME, weights: ..., backbone_options: {...}, fields: [...]}`` (``weights`` and
``backbone_options`` optional; ``fields`` defaults to the branch's own name). ``fields`` says which keys of the
fused example the branch reads:

* a list: ``[photo]`` gives the branch ``{<its preprocessor's input key>: example["photo"], "photo": ...}``;
  several fields ``[age, income]`` give each by name plus the list of their values under the input key (a
  vector for a tabular backbone, named columns for ``columns``);
* a mapping ``{question: q, context: c}`` renames each field to the key the branch's preprocessor reads.

A value that is itself a mapping (a decoded clip: ``{"audio": samples, "sample_rate": 16000}``) is merged into the
branch's example. A branch is missing for an example when any of its fields is missing: the key is absent, or
the value is ``None``, an empty string, NaN, an empty list or a clip without samples.

Example:
    >>> from polygraft.fusion.branches import FieldMap, parse_branches
    >>> [b.fields for b in parse_branches({"text": {"backbone": "bert", "fields": ["caption"]}, "x": {"backbone": "toy"}})]
    [('caption',), ('x',)]
    >>> FieldMap(("caption",), None, "text").extract({"caption": "a red square", "_origin": "f.csv:2"})
    {'text': 'a red square', 'caption': 'a red square', '_origin': 'f.csv:2'}
    >>> FieldMap(("caption",), None, "text").extract({"caption": " "}) is None
    True
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from polygraft.errors import ConfigError
from polygraft.options import closest

BRANCH_KEYS = ("backbone", "weights", "backbone_options", "fields")
"""The keys a branch mapping may hold."""

_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")


@dataclass(frozen=True)
class BranchConfig:
    """One branch as the recipe describes it."""

    name: str
    backbone: str
    weights: str | None = None
    backbone_options: dict[str, Any] = field(default_factory=dict)
    fields: tuple[str, ...] = ()
    keys: tuple[str, ...] | None = None  # the branch keys of a mapping-form ``fields``, in field order

    def fields_option(self) -> list[str] | dict[str, str]:
        """``fields`` as written (a list, or the mapping field → branch key)."""
        return dict(zip(self.fields, self.keys)) if self.keys is not None else list(self.fields)


def parse_branches(raw: Any, *, where: str = "backbone_options.branches") -> list[BranchConfig]:
    """The branches of ``raw`` (a mapping name → branch), checked; a branch set to ``null`` is left out (a recipe
    override such as ``backbone_options.branches.text=null`` makes a model without that branch)."""
    if not isinstance(raw, Mapping) or not raw:
        raise ConfigError(f"{where} must map branch names to {{backbone: NAME, fields: [...]}}, e.g. "
                          "branches: {image: {backbone: timm, fields: [photo]}, text: {backbone: bert, fields: "
                          f"[caption]}}; got {raw!r}")
    branches = []
    for name, body in raw.items():
        if body is None:
            continue
        branches.append(_branch(str(name), body, where=f"{where}.{name}"))
    if not branches:
        raise ConfigError(f"{where}: every branch is null; keep at least one")
    return branches


def _branch(name: str, body: Any, *, where: str) -> BranchConfig:
    if not _NAME.match(name):
        raise ConfigError(f"{where}: a branch name starts with a letter and holds letters, digits, '_' or '-' "
                          f"(it names metrics and checkpoint entries), got {name!r}")
    if isinstance(body, str):
        body = {"backbone": body}
    if not isinstance(body, Mapping):
        raise ConfigError(f"{where} must be a mapping {{backbone: NAME, fields: [...]}}, got {body!r}")
    for key in body:
        if key not in BRANCH_KEYS:
            near = closest(str(key), BRANCH_KEYS, n=1)
            hint = f"; did you mean {near[0]!r}?" if near else ""
            raise ConfigError(f"{where}: unknown key {key!r}{hint} A branch holds {', '.join(BRANCH_KEYS)}")
    backbone = body.get("backbone")
    if not isinstance(backbone, str) or not backbone:
        raise ConfigError(f"{where} needs 'backbone: NAME' (`polygraft list backbones`)")
    if backbone.rsplit(":", 1)[-1] == "fusion":
        raise ConfigError(f"{where}: a branch cannot itself be a fusion backbone; list its branches here instead")
    options = body.get("backbone_options") or {}
    if not isinstance(options, Mapping):
        raise ConfigError(f"{where}.backbone_options must be a mapping of option: value, got {options!r}")
    weights = body.get("weights")
    if weights is not None and not isinstance(weights, str):
        raise ConfigError(f"{where}.weights must be a name or a path, got {weights!r}")
    fields, keys = _fields(body.get("fields", [name]), where=f"{where}.fields")
    return BranchConfig(name, backbone, weights, dict(options), fields, keys)


def _fields(value: Any, *, where: str) -> tuple[tuple[str, ...], tuple[str, ...] | None]:
    if isinstance(value, str):
        value = [value]
    if isinstance(value, Mapping):
        pairs = [(str(k), v) for k, v in value.items()]
        if not pairs or not all(isinstance(v, str) and v for _, v in pairs):
            raise ConfigError(f"{where}: a mapping form maps each field to the key the branch reads, e.g. "
                              f"{{question: question, passage: context}}; got {dict(value)!r}")
        if len({v for _, v in pairs}) != len(pairs):
            raise ConfigError(f"{where}: two fields map to the same branch key in {dict(value)!r}")
        return tuple(k for k, _ in pairs), tuple(v for _, v in pairs)
    if not isinstance(value, Sequence) or not value or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f"{where} must be a field name, a list of them or a mapping field → key; got {value!r}")
    if len(set(value)) != len(value):
        raise ConfigError(f"{where} lists a field twice: {list(value)}")
    return tuple(value), None


def is_missing(value: Any) -> bool:
    """Whether a field's value counts as missing (``None``, blank text, NaN, an empty list, a clip without samples)."""
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, float):
        return math.isnan(value)
    if isinstance(value, Mapping):
        return not value or all(v is None for k, v in value.items() if k != "sample_rate")
    if isinstance(value, list | tuple):
        return len(value) == 0
    return False


@dataclass(frozen=True)
class FieldMap:
    """How one branch reads a fused example: its ``fields`` (and their branch ``keys`` in mapping form) and the
    ``input_key`` of its preprocessor. Picklable: it runs in DataLoader workers."""

    fields: tuple[str, ...]
    keys: tuple[str, ...] | None
    input_key: str

    def present(self, example: Mapping[str, Any]) -> bool:
        return all(not is_missing(example.get(name)) for name in self.fields)

    def branch_key(self, name: str) -> str:
        """The key the branch reads field ``name`` under."""
        if self.keys is not None:
            return self.keys[self.fields.index(name)]
        return self.input_key if len(self.fields) == 1 else name

    def extract(self, example: Mapping[str, Any]) -> dict[str, Any] | None:
        """The branch's raw example, or ``None`` when the branch is missing for this example."""
        if not self.present(example):
            return None
        values = [example[name] for name in self.fields]
        branch: dict[str, Any] = {}
        if self.keys is not None:
            for key, value in zip(self.keys, values):
                if isinstance(value, Mapping) and key == self.input_key:
                    branch.update(value)
                else:
                    branch[key] = value
        elif len(values) == 1:
            value = values[0]
            if isinstance(value, Mapping):
                branch.update(value)
            else:
                branch[self.input_key] = value
                if self.fields[0] != self.input_key:
                    branch[self.fields[0]] = value
        else:
            branch.update(zip(self.fields, values))
            if self.input_key not in self.fields:
                branch[self.input_key] = list(values)
        if "_origin" in example:
            branch["_origin"] = example["_origin"]
        return branch


__all__ = ["BRANCH_KEYS", "BranchConfig", "FieldMap", "is_missing", "parse_branches"]

"""Component specs: frozen, import-free descriptions of what a plugin provides.

A spec names a component and points at its factory as a ``"module:function"`` string. Nothing is imported
until :meth:`ComponentSpec.load_factory` is called, so listing components stays fast.

Example:
    >>> from polygraft.specs import BackboneSpec
    >>> spec = BackboneSpec(name="toy", factory="polygraft.builtin.toy:create_toy_backbone",
    ...                     modality="any", produces=("pooled", "sequence"))
    >>> spec.kind
    'backbone'
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import Any, ClassVar

from polygraft.errors import PluginError

MODALITIES = ("text", "vision", "speech", "any")
FEATURE_KINDS = ("pooled", "sequence", "maps")


def _frozen_mapping(value: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return MappingProxyType(dict(value or {}))


@dataclass(frozen=True)
class ComponentSpec:
    """What every component spec has: a name, a lazily imported factory, a description and metadata."""

    kind: ClassVar[str] = "component"

    name: str
    factory: str
    description: str = ""
    modality: str = "any"
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.name or not isinstance(self.name, str):
            raise PluginError(f"{type(self).__name__} needs a non-empty string name, got {self.name!r}")
        if ":" not in self.factory:
            raise PluginError(
                f"{self.kind} {self.name!r}: factory must be a 'module:function' string, got {self.factory!r}"
            )
        if self.modality not in MODALITIES:
            raise PluginError(
                f"{self.kind} {self.name!r}: modality must be one of {MODALITIES}, got {self.modality!r}"
            )
        object.__setattr__(self, "metadata", _frozen_mapping(self.metadata))

    def load_factory(self) -> Callable[..., Any]:
        """Import and return the factory. Import errors become :class:`PluginError` naming the spec."""
        module_name, _, attr = self.factory.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise PluginError(f"{self.kind} {self.name!r}: cannot import {module_name!r}: {exc}") from exc
        target: Any = module
        for part in attr.split("."):
            try:
                target = getattr(target, part)
            except AttributeError as exc:
                raise PluginError(f"{self.kind} {self.name!r}: {module_name!r} has no {attr!r}") from exc
        return target

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly view (used by ``polygraft list --json``)."""
        data: dict[str, Any] = {"kind": self.kind}
        for spec_field in fields(self):
            value = getattr(self, spec_field.name)
            if isinstance(value, tuple):
                value = list(value)
            elif isinstance(value, Mapping):
                value = dict(value)
            data[spec_field.name] = value
        return data


@dataclass(frozen=True)
class BackboneSpec(ComponentSpec):
    """A backbone: turns a modality's inputs into :class:`polygraft.features.Features`.

    ``produces`` lists the feature kinds it yields (``pooled``, ``sequence``, ``maps``).
    """

    kind: ClassVar[str] = "backbone"
    produces: tuple[str, ...] = ("pooled",)

    def __post_init__(self) -> None:
        super().__post_init__()
        unknown = set(self.produces) - set(FEATURE_KINDS)
        if unknown:
            raise PluginError(f"backbone {self.name!r}: unknown feature kinds {sorted(unknown)}")


@dataclass(frozen=True)
class TaskSpec(ComponentSpec):
    """A fine-tuning task: head + loss + metrics + decoding. ``consumes`` is the feature kind it needs."""

    kind: ClassVar[str] = "task"
    consumes: str = "pooled"
    target: str = "class"


@dataclass(frozen=True)
class DatasetSpec(ComponentSpec):
    """A data source. ``target`` names what its examples carry (class, tags, boxes, transcript, none)."""

    kind: ClassVar[str] = "dataset"
    target: str = "class"


@dataclass(frozen=True)
class ObjectiveSpec(ComponentSpec):
    """A pretraining objective (MLM, contrastive, wav2vec2...)."""

    kind: ClassVar[str] = "objective"


@dataclass(frozen=True)
class StrategySpec(ComponentSpec):
    """A fine-tuning strategy (full, linear-probe, LoRA, EMA...)."""

    kind: ClassVar[str] = "strategy"


@dataclass(frozen=True)
class WeightsSpec(ComponentSpec):
    """Named pretrained weights for a backbone. The factory returns a local path (no download)."""

    kind: ClassVar[str] = "weights"
    backbone: str = ""
    license: str = "unknown"


@dataclass(frozen=True)
class CallbackSpec(ComponentSpec):
    """A trainer callback that recipes can name."""

    kind: ClassVar[str] = "callback"


SPEC_TYPES: dict[str, type[ComponentSpec]] = {
    cls.kind: cls
    for cls in (BackboneSpec, TaskSpec, DatasetSpec, ObjectiveSpec, StrategySpec, WeightsSpec, CallbackSpec)
}
KIND_PLURALS = {
    "backbone": "backbones",
    "task": "tasks",
    "dataset": "datasets",
    "objective": "objectives",
    "strategy": "strategies",
    "weights": "weights",
    "callback": "callbacks",
}

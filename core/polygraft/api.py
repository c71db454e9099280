"""The Python API; the CLI is a thin layer over these functions.

Example — a pretrained encoder with its preprocessing in a few lines:
    >>> import polygraft
    >>> backbone = polygraft.create_backbone("toy", in_features=3)
    >>> inputs = backbone.preprocessor.collate([backbone.preprocessor({"x": [1.0, 2.0, 3.0]})])
    >>> backbone(inputs).pool().shape[0]
    1
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from polygraft.errors import IncompatibleComponentsError, UnknownComponentError, WeightsError
from polygraft.plugins import Catalog, build_catalog
from polygraft.specs import KIND_PLURALS, BackboneSpec, TaskSpec

if TYPE_CHECKING:
    from polygraft.interfaces import Backbone, DataSource, Task, TrainingModule

_KINDS = {plural: kind for kind, plural in KIND_PLURALS.items()} | {kind: kind for kind in KIND_PLURALS}


def list_components(kind: str, *, modality: str | None = None, catalog: Catalog | None = None) -> list[dict[str, Any]]:
    """Specs of one kind (``"backbones"`` or ``"backbone"``...) as dicts, with the providing plugin.

    Imports no deep-learning library.
    """
    if kind not in _KINDS:
        raise UnknownComponentError(f"unknown component kind {kind!r}; choose from {sorted(KIND_PLURALS.values())}")
    catalog = catalog or build_catalog()
    rows = []
    for entry in catalog.registry(_KINDS[kind]).entries():
        if modality and entry.spec.modality not in (modality, "any"):
            continue
        rows.append({**entry.spec.to_dict(), "plugin": entry.owner})
    return rows


def resolve_weights(weights: str | Path, *, backbone: str, catalog: Catalog) -> tuple[str, dict[str, Any]]:
    """Turn a registered alias into a local path plus backbone options; pass paths and hub ids through."""
    registry = catalog.registry("weights")
    name = str(weights)
    if name in registry:
        spec = registry.get(name)
        if spec.backbone and spec.backbone != backbone:  # type: ignore[attr-defined]
            raise IncompatibleComponentsError(
                f"weights {name!r} are for backbone {spec.backbone!r}, not {backbone!r}: "  # type: ignore[attr-defined]
                f"use create_backbone({spec.backbone!r}, weights={name!r})"  # type: ignore[attr-defined]
            )
        location = spec.load_factory()()
        if isinstance(location, str | Path):
            return str(location), {}
        location = dict(location)
        return str(location.pop("path")), location
    if Path(name).exists() or "/" in name:
        return name, {}
    known = ", ".join(registry.names()) or "none"
    raise WeightsError(
        f"weights {name!r} are neither a registered alias, a local path nor a hub id (org/name). "
        f"Known aliases: {known}. See `polygraft list weights`."
    )


def create_backbone(name: str, *, weights: str | Path | None = None, trainable_layers: int | None = None,
                    catalog: Catalog | None = None, **options: Any) -> Backbone:
    """Build a registered backbone, random-init or from ``weights`` (alias, local path, run dir, hub id).

    ``trainable_layers=N`` freezes all but the last N layer groups (0 freezes everything); other keyword
    options go to the plugin's factory.

    Example:
        >>> import polygraft
        >>> polygraft.create_backbone("toy", in_features=4, hidden=8).feature_dim
        8
    """
    from polygraft.model_io import (
        WEIGHTS_NAME,
        backbone_options,
        find_model_dir,
        load_weights_into,
        read_model_config,
    )

    catalog = catalog or build_catalog()
    spec = catalog.get("backbone", name)
    factory = spec.load_factory()
    model_dir = find_model_dir(weights) if weights is not None else None
    if model_dir is not None:
        config = read_model_config(model_dir)
        if config["backbone"]["name"] != name:
            raise IncompatibleComponentsError(
                f"{model_dir} holds a {config['backbone']['name']!r} backbone, not {name!r}"
            )
        build = {**backbone_options(config, model_dir), **options}
        backbone = factory(weights=None, **build)
        prefix = "" if config["kind"] == "backbone" else "backbone."
        load_weights_into(backbone, model_dir / WEIGHTS_NAME, prefix=prefix)
    else:
        extra: dict[str, Any] = {}
        path = None
        if weights is not None:
            path, extra = resolve_weights(weights, backbone=name, catalog=catalog)
        build = {**extra, **options}
        backbone = factory(weights=path, **build)
    backbone.spec_name = name
    if not backbone.build_options:
        backbone.build_options = dict(build)
    if trainable_layers is not None:
        backbone.freeze(trainable_layers)
        backbone.requested_trainable_layers = trainable_layers
    return backbone


def check_compatible(task: TaskSpec, backbone: BackboneSpec) -> None:
    """A task that needs sequences or maps needs a backbone that yields them (pooled is always derivable)."""
    if task.consumes != "pooled" and task.consumes not in backbone.produces:
        raise IncompatibleComponentsError(
            f"task {task.name!r} reads {task.consumes!r} features but backbone {backbone.name!r} yields only "
            f"{list(backbone.produces)}; pick a backbone that yields {task.consumes!r} "
            "(see `polygraft list backbones`)"
        )


def create_task(name: str, *, backbone: str | Backbone, label_names: Sequence[str] | None = None,
                num_classes: int | None = None, weights: str | Path | None = None,
                backbone_options: dict[str, Any] | None = None, catalog: Catalog | None = None,
                **options: Any) -> Task:
    """Build a task (head, loss, metrics) on a backbone given by name or instance.

    Example:
        >>> import polygraft
        >>> task = polygraft.create_task("classification", backbone="toy", num_classes=3,
        ...                              backbone_options={"in_features": 2})
        >>> task.label_names
        ['0', '1', '2']
    """
    catalog = catalog or build_catalog()
    spec = catalog.get("task", name)
    if isinstance(backbone, str):
        check_compatible(spec, catalog.get("backbone", backbone))  # type: ignore[arg-type]
        backbone = create_backbone(backbone, weights=weights, catalog=catalog, **(backbone_options or {}))
    elif backbone.spec_name in catalog.registry("backbone"):
        check_compatible(spec, catalog.get("backbone", backbone.spec_name))  # type: ignore[arg-type]
    if label_names is None:
        if num_classes is None:
            raise IncompatibleComponentsError(f"task {name!r} needs label_names=[...] or num_classes=N")
        label_names = [str(i) for i in range(num_classes)]
    elif num_classes is not None and num_classes != len(label_names):
        raise IncompatibleComponentsError(f"num_classes={num_classes} but {len(label_names)} label names given")
    task = spec.load_factory()(backbone=backbone, label_names=list(label_names), **options)
    task.spec_name = name
    return task


def create_objective(name: str, *, backbone: str | Backbone, weights: str | Path | None = None,
                     backbone_options: dict[str, Any] | None = None, catalog: Catalog | None = None,
                     **options: Any) -> TrainingModule:
    """Build a pretraining objective around a backbone."""
    catalog = catalog or build_catalog()
    spec = catalog.get("objective", name)
    if isinstance(backbone, str):
        backbone = create_backbone(backbone, weights=weights, catalog=catalog, **(backbone_options or {}))
    objective = spec.load_factory()(backbone=backbone, **options)
    objective.spec_name = name
    return objective


def load_dataset(name: str, *, catalog: Catalog | None = None, **options: Any) -> DataSource:
    """Open a registered dataset (``split=...``, ``path=...`` and other options go to its factory).

    Example:
        >>> import polygraft
        >>> len(polygraft.load_dataset("synthetic-classification", size=10))
        10
    """
    catalog = catalog or build_catalog()
    source = catalog.get("dataset", name).load_factory()(**options)
    if not source.name:
        source.name = name
    return source


def load(path: str | Path, *, catalog: Catalog | None = None) -> Any:
    """Rebuild a trained model from a run directory (or its ``model/``), ready to ``predict``."""
    from polygraft.model_io import load_model

    return load_model(path, catalog=catalog)

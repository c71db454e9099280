"""The Python API: build components, open datasets, rebuild trained models. The CLI is a thin layer over it.

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

from polygraft.components import build, build_saved_backbone
from polygraft.errors import ConfigError, IncompatibleComponentsError, UnknownComponentError, WeightsError
from polygraft.plugins import Catalog, build_catalog
from polygraft.specs import KIND_PLURALS, BackboneSpec, TaskSpec

if TYPE_CHECKING:
    from polygraft.interfaces import Backbone, DataSource, Task, TrainingModule

_KINDS = {plural: kind for kind, plural in KIND_PLURALS.items()} | {kind: kind for kind in KIND_PLURALS}


def list_components(kind: str, *, modality: str | None = None, catalog: Catalog | None = None) -> list[dict[str, Any]]:
    """Specs of one kind (``"backbones"`` or ``"backbone"``...) as dicts, with the providing plugin.

    Imports no deep-learning library. A claim that does not answer its bare name (the name is contested) is
    listed under its qualified name ``owner:name``.
    """
    if kind not in _KINDS:
        raise UnknownComponentError(f"unknown component kind {kind!r}; choose from {sorted(KIND_PLURALS.values())}")
    catalog = catalog or build_catalog()
    if modality is not None:
        modalities = catalog.registry("modality")
        if modality not in modalities:
            raise UnknownComponentError(modalities._unknown_message(modality))
    registry = catalog.registry(_KINDS[kind])
    answering = {id(entry) for entry in registry.entries()}
    rows = []
    for entry in registry.all_entries():
        if modality and entry.spec.modality not in (modality, "any"):
            continue
        row = {**entry.spec.to_dict(), "plugin": entry.owner}
        if id(entry) not in answering:
            row["name"] = entry.qualified_name
        rows.append(row)
    return rows


def resolve_weights(weights: str | Path, *, backbone: str, catalog: Catalog) -> tuple[str, dict[str, Any]]:
    """A registered alias → (local path, the backbone options its spec declares); paths and hub ids pass through
    (:func:`polygraft.components.resolve_weights`)."""
    from polygraft.components import resolve_weights as resolve

    return resolve(weights, backbone=backbone, catalog=catalog)


def create_backbone(name: str, *, weights: str | Path | None = None, catalog: Catalog | None = None,
                    **options: Any) -> Backbone:
    """Build a registered backbone, random-init or from ``weights`` (alias, local path, run dir, hub id).

    Keyword options go to the plugin's factory after a check against its signature (unknown names get the
    closest valid names). Which layers train is a strategy's option (``{name: full, trainable_layers: N}``).
    Composite backbones build their parts the same way with :func:`polygraft.components.build_backbone`.

    Example:
        >>> import polygraft
        >>> polygraft.create_backbone("toy", in_features=4, hidden=8).feature_dim
        8
    """
    from polygraft.components import build_backbone

    if "trainable_layers" in options:
        raise ConfigError("trainable_layers is a strategy option: strategy: [{name: full, trainable_layers: "
                          f"{options['trainable_layers']}}}] (or FullStrategy(trainable_layers=N))")
    return build_backbone(catalog or build_catalog(), name, weights=weights, options=options)


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
    if num_classes is not None and (isinstance(num_classes, bool) or not isinstance(num_classes, int)
                                    or not 1 <= num_classes <= 1_000_000):
        raise ConfigError(f"task {name!r}: num_classes must be a whole number between 1 and 1,000,000, got "
                          f"{num_classes!r}")
    if label_names is None:
        if num_classes is None:
            raise IncompatibleComponentsError(f"task {name!r} needs label_names=[...] or num_classes=N")
        label_names = [str(i) for i in range(num_classes)]
    elif num_classes is not None and num_classes != len(label_names):
        raise IncompatibleComponentsError(f"num_classes={num_classes} but {len(label_names)} label names given")
    return build(catalog, "task", name, options, where="task_options", backbone=backbone,
                 label_names=list(label_names))


def create_objective(name: str, *, backbone: str | Backbone, weights: str | Path | None = None,
                     backbone_options: dict[str, Any] | None = None, catalog: Catalog | None = None,
                     **options: Any) -> TrainingModule:
    """Build a pretraining objective around a backbone."""
    catalog = catalog or build_catalog()
    catalog.get("objective", name)  # unknown names fail before a backbone is built
    if isinstance(backbone, str):
        backbone = create_backbone(backbone, weights=weights, catalog=catalog, **(backbone_options or {}))
    return build(catalog, "objective", name, options, where="objective_options", backbone=backbone)


def load_dataset(name: str, *, catalog: Catalog | None = None, where: str = "", **options: Any) -> DataSource:
    """Open a registered dataset (``split=...``, ``path=...`` and other options go to its factory).

    Example:
        >>> import polygraft
        >>> len(polygraft.load_dataset("synthetic-classification", size=10))
        10
    """
    catalog = catalog or build_catalog()
    source = build(catalog, "dataset", name, options, where=where)
    if not source.name:
        source.name = name
    return source


def load(path: str | Path, *, catalog: Catalog | None = None) -> Any:
    """Rebuild a trained model from a run directory (or its ``model/``), ready to ``predict``.

    A task comes back in eval mode with its label names; a pretraining run comes back as its backbone. The
    rebuilt preprocessor must describe itself exactly as the saved one did, else a :class:`WeightsError` says
    which settings differ (a plugin that keeps fitted state outside its export options would otherwise rebuild
    the wrong preprocessing silently).
    """
    from polygraft.model_io import (
        backbone_options,
        find_model_dir,
        load_weights_into,
        read_model_config,
        version_changes,
        weights_file,
    )
    from polygraft.run import RunDirectory

    catalog = catalog or build_catalog()
    RunDirectory(path, enabled=False).check_finished()  # a run that stopped or crashed: say so first
    model_dir = find_model_dir(path)
    if model_dir is None:
        raise WeightsError(f"{path}: no polygraft.json here or in {Path(path) / 'model'}; is it a polygraft run?")
    RunDirectory(model_dir.parent if model_dir.name == "model" else model_dir, enabled=False).check_finished()
    config = read_model_config(model_dir)
    try:
        if config["kind"] == "backbone":
            model: Any = create_backbone(config["backbone"]["name"], weights=model_dir, catalog=catalog)
            backbone = model
        else:
            backbone = build_saved_backbone(catalog, config["backbone"]["name"], backbone_options(config, model_dir),
                                            config.get("preprocessing"), where=f"{model_dir}/polygraft.json")
            model = build(catalog, "task", config["task"], config.get("options", {}),
                          where=f"{model_dir}/polygraft.json", backbone=backbone, label_names=config["label_names"])
            load_weights_into(model, weights_file(model_dir))
        _check_preprocessing(backbone, config.get("preprocessing"), model_dir)
    except (WeightsError, ConfigError) as exc:
        changes = version_changes(config)
        if not changes:
            raise
        raise type(exc)(f"{exc}. The model was saved with {', '.join(changes)}: a component may have changed "
                        "since; load it with the versions it was saved with, or train it again") from None
    model.eval()
    return model


def _check_preprocessing(backbone: Backbone, saved: Any, model_dir: Path) -> None:
    import json

    rebuilt = json.loads(json.dumps(backbone.preprocessor.describe(), default=str))
    if saved is not None and rebuilt != saved:
        changed = sorted(k for k in set(saved) | set(rebuilt) if saved.get(k) != rebuilt.get(k))
        details = "; ".join(f"{k}: saved {saved.get(k)!r}, rebuilt {rebuilt.get(k)!r}" for k in changed[:5])
        raise WeightsError(
            f"{model_dir}: the rebuilt preprocessing differs from the one the model was trained with ({details}). "
            "The backbone's export() must return every option (or write every file) its preprocessor needs, "
            "fitted state included; see docs/writing-plugins.md"
        )

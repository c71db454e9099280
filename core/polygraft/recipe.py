"""Recipes: a typed run description read from YAML (``safe_load``) with dotted overrides, and running it.

Before the first training step :func:`run_recipe` checks every component's name and options, opens every data
split (files listed, headers read, labels compared with the training labels) and prints what each split skipped,
so a mistake in ``data.test`` costs seconds, not a training run.

Options every split shares go under ``data.common`` (a split's own keys win)::

    data:
      common: {dataset: rotten-tomatoes, train_size: 2000, test_size: 1000, seed: 0}
      train: {}
      test: {}

Example:
    >>> import tempfile
    >>> from polygraft.recipe import Recipe, run_recipe
    >>> recipe = Recipe.from_dict({"task": "classification", "backbone": "toy",
    ...     "backbone_options": {"in_features": 8},
    ...     "data": {"train": {"dataset": "synthetic-classification", "size": 32}},
    ...     "trainer": {"max_steps": 3, "batch_size": 8, "progress": False},
    ...     "output_dir": tempfile.mkdtemp()}, overrides=["trainer.max_steps=2"])
    >>> recipe.trainer.max_steps, run_recipe(recipe).metrics
    (2, {})
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from polygraft.errors import ConfigError, DataError
from polygraft.options import closest
from polygraft.training.config import REMOVED, TrainerConfig

if TYPE_CHECKING:
    from polygraft.interfaces import Callback, DataSource, TrainingModule
    from polygraft.plugins import Catalog
    from polygraft.training.trainer import FitResult

DATA_SPLITS = ("train", "val", "test")
COMMON = "common"
"""``data.common``: dataset options shared by every split."""


KEY_DOCS = {
    "task": "the task to fine-tune (`polygraft list tasks`); give `task` or `objective`",
    "objective": "the pretraining objective (`polygraft list objectives`)",
    "backbone": "the backbone (`polygraft list backbones`), or `owner:name` to pick one of several",
    "weights": "pretrained weights: a registered alias, a local path, a polygraft run; null = random init",
    "backbone_options": "the backbone factory's options (checked; unknown names get the closest)",
    "task_options": "the task's options",
    "objective_options": "the objective's options",
    "data": "`train` (required), `val`, `test`: `{dataset: NAME, ...options}`; `common` holds options every split "
            "shares; `data.val=null` drops a split",
    "labels": "the label names in output order; default: the training data's",
    "strategy": "fine-tuning strategies in order: names or `{name: ..., options}` (`polygraft list strategies`)",
    "callbacks": "trainer callbacks: names or `{name: ..., options}` (`polygraft list callbacks`)",
    "trainer": "the trainer's options (below)",
    "output_dir": "the run directory",
    "resume": "`last` (this run directory's checkpoint) or a checkpoint path",
    "overwrite": "replace an earlier run in `output_dir` (otherwise a new run there is refused)",
}
"""What each top-level recipe key means (``docs/recipes.md`` is generated from these and the field types)."""


@dataclass
class Recipe:
    """What to train (task or objective), on which backbone and data, with which trainer settings."""

    backbone: str
    data: dict[str, dict[str, Any]]
    task: str | None = None
    objective: str | None = None
    weights: str | None = None
    backbone_options: dict[str, Any] = field(default_factory=dict)
    task_options: dict[str, Any] = field(default_factory=dict)
    objective_options: dict[str, Any] = field(default_factory=dict)
    labels: list[str] | None = None
    strategy: list[Any] = field(default_factory=lambda: ["full"])
    callbacks: list[Any] = field(default_factory=list)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    output_dir: str = "runs/latest"
    resume: str | None = None
    overwrite: bool = False
    source: str | None = None  # the YAML file it came from

    @classmethod
    def from_yaml(cls, path: str | Path, overrides: Sequence[str] = ()) -> Recipe:
        from polygraft.safe_yaml import load_file

        path = Path(path)
        raw = load_file(path) or {}  # size, alias-expansion and duplicate-key limits, named errors
        if not isinstance(raw, dict):
            raise ConfigError(f"{path}: a recipe is a mapping of keys (task, backbone, data, trainer...)")
        recipe = cls.from_dict(raw, overrides=overrides, where=str(path))
        recipe.source = str(path)
        return recipe

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], *, overrides: Sequence[str] = (), where: str = "recipe") -> Recipe:
        data = _deep_copy(raw)
        for override in overrides:
            apply_override(data, override)
        _check_keys(data, {f.name for f in dataclasses.fields(cls)} - {"source"}, where)
        trainer_raw = data.pop("trainer", None) or {}
        if not isinstance(trainer_raw, dict):
            raise ConfigError(f"{where}: 'trainer' must be a mapping")
        for key, instead in REMOVED.items():
            if key in trainer_raw and trainer_raw[key] in (False, None):  # its old default (saved run configs)
                del trainer_raw[key]
            elif key in trainer_raw:
                raise ConfigError(f"{where}: trainer.{key} was removed; write {instead}")
        _check_keys(trainer_raw, {f.name for f in dataclasses.fields(TrainerConfig)}, f"{where}: trainer")
        for key in ("backbone", "data"):
            if key not in data:
                raise ConfigError(f"{where}: missing required key {key!r}")
        _check_names(data, where)
        if bool(data.get("task")) == bool(data.get("objective")):
            raise ConfigError(f"{where}: give exactly one of 'task' (finetune) or 'objective' (pretrain)")
        splits = data["data"]
        if not isinstance(splits, dict) or "train" not in splits:
            raise ConfigError(f"{where}: data needs a 'train' entry: data: {{train: {{dataset: NAME, ...}}}}")
        _check_keys(splits, {*DATA_SPLITS, COMMON}, f"{where}: data")
        common = splits.pop(COMMON, None) or {}
        if not isinstance(common, dict):
            raise ConfigError(f"{where}: data.common must be a mapping of dataset options every split shares")
        splits = data["data"] = {split: ({**common, **ref} if isinstance(ref, dict) else ref)
                                 for split, ref in splits.items() if ref is not None or split == "train"}
        for split, ref in splits.items():  # data.val=null on the command line drops a split
            if not isinstance(ref, dict) or not isinstance(ref.get("dataset"), str):
                raise ConfigError(f"{where}: data.{split} must be a mapping with a 'dataset' name")
        for key in ("backbone_options", "task_options", "objective_options"):
            if not isinstance(data.get(key) or {}, dict):
                raise ConfigError(f"{where}: {key} must be a mapping of option: value")
            data[key] = data.get(key) or {}
        if "trainable_layers" in data.get("backbone_options", {}):
            raise ConfigError(f"{where}: backbone_options.trainable_layers moved to the strategy; write "
                              f"strategy: [{{name: full, trainable_layers: {data['backbone_options']['trainable_layers']}}}]")
        if isinstance(data.get("strategy"), str | dict):
            data["strategy"] = [data["strategy"]]
        if isinstance(data.get("callbacks"), str | dict):
            data["callbacks"] = [data["callbacks"]]
        return cls(trainer=TrainerConfig(**trainer_raw), **data)

    def to_dict(self) -> dict[str, Any]:
        """The resolved recipe (every default filled in), as saved to ``config.yaml``."""
        out = dataclasses.asdict(self)
        out.pop("source")
        return out

    def dataset_options(self, split: str) -> tuple[str, dict[str, Any]]:
        """``(dataset name, options)`` of a split; ``split`` defaults to the key (``val: {dataset: x}`` → val)."""
        ref = dict(self.data[split])
        name = ref.pop("dataset")
        ref.setdefault("split", split)
        return name, ref


# ---------------------------------------------------------------------------------------------- running
def load_split(recipe: Recipe, split: str, catalog: Catalog) -> DataSource | None:
    """Open ``data.<split>`` through the catalog (options checked first), or ``None`` when the recipe has none."""
    from polygraft.api import load_dataset

    if split not in recipe.data:
        return None
    name, options = recipe.dataset_options(split)
    return load_dataset(name, catalog=catalog, where=f"data.{split}", **options)


def label_names_for(recipe: Recipe, train: DataSource, catalog: Catalog) -> list[str]:
    """Recipe ``labels``, else what the task reads from the training data (``Task.labels_from_data``)."""
    from polygraft.interfaces.task import Task

    if recipe.labels:
        return list(recipe.labels)
    factory = catalog.get("task", recipe.task).load_factory()
    infer = getattr(factory, "labels_from_data", Task.labels_from_data)
    return list(infer(train, **recipe.task_options))


def check_recipe(recipe: Recipe, catalog: Catalog) -> None:
    """Every component name and option, checked before anything is built or opened."""
    from polygraft.components import check_options

    kind, name = ("task", recipe.task) if recipe.task else ("objective", recipe.objective)
    check_options(catalog.get("backbone", recipe.backbone), recipe.backbone_options,
                    supplied=("weights",), where="backbone_options")
    check_options(catalog.get(kind, name), getattr(recipe, f"{kind}_options"),
                    supplied=("backbone", "label_names"), where=f"{kind}_options")
    for split in recipe.data:
        dataset, options = recipe.dataset_options(split)
        check_options(catalog.get("dataset", dataset), options, where=f"data.{split}")


def build_module(recipe: Recipe, train: DataSource, catalog: Catalog) -> TrainingModule:
    """The task or objective of the recipe; ``trainer.seed`` fixes the initial weights of its head and of random
    backbones (the trainer seeds again for data order and dropout)."""
    import torch

    from polygraft.api import create_objective, create_task

    torch.manual_seed(recipe.trainer.seed)
    if recipe.task:
        return create_task(recipe.task, backbone=recipe.backbone, weights=recipe.weights,
                           label_names=label_names_for(recipe, train, catalog),
                           backbone_options=recipe.backbone_options, catalog=catalog, **recipe.task_options)
    return create_objective(recipe.objective, backbone=recipe.backbone, weights=recipe.weights,
                            backbone_options=recipe.backbone_options, catalog=catalog, **recipe.objective_options)


def report_skips(split: str, source: DataSource) -> None:
    """Print what a split skipped or changed (main process only): one line per reason with the first places."""
    from polygraft.training.distributed import DistributedContext

    if not DistributedContext.from_environment().is_main:
        return
    report = source.skip_report()
    for title, reasons in (("skipped", report["reasons"]), ("changed", report["changed"])):
        for reason, row in reasons.items():
            first = ", ".join(row["first"][:3])
            print(f"data.{split}: {title} {row['count']} example(s): {reason}" + (f" (first: {first})" if first else ""),
                  file=sys.stderr)


def check_evaluation_labels(module: TrainingModule, split: str, source: DataSource) -> None:
    """Labels of an evaluation split the model was never trained on: one error naming the first such label, where
    it is (file and row, when known) and the labels the model knows."""
    unknown = module.unknown_labels(source)
    if not unknown:
        return
    label = unknown[0]
    origin = getattr(module, "label_origin", lambda *_: None)(source, label)
    others = f" (and {len(unknown) - 1} more: {unknown[1:6]})" if len(unknown) > 1 else ""
    raise DataError(f"label {label!r} of data.{split} was never seen in training{others}; known labels: "
                    f"{module.label_names}. Fix the split, or list every label in the recipe's labels", path=origin)


def run_recipe(recipe: Recipe, *, catalog: Catalog | None = None, callbacks: Sequence[Callback] = ()) -> FitResult:
    """Fine-tune (``task``) or pretrain (``objective``) as the recipe says; returns the fit result. ``callbacks``
    run after the recipe's own (a benchmark's clock, a notebook's progress display)."""
    from polygraft.components import build, parse_entries
    from polygraft.finetune import build_strategies
    from polygraft.plugins import build_catalog
    from polygraft.training.trainer import Trainer

    catalog = catalog or build_catalog()
    check_recipe(recipe, catalog)
    strategies = build_strategies(recipe.strategy, catalog) if recipe.task else []
    named = [build(catalog, "callback", name, options, where=f"callbacks[{index}]")
             for index, (name, options) in enumerate(parse_entries(recipe.callbacks, where="callbacks"))]
    splits = {split: load_split(recipe, split, catalog) for split in DATA_SPLITS}
    for split, source in splits.items():
        if source is not None:
            report_skips(split, source)
    module = build_module(recipe, splits["train"], catalog)
    for split in ("val", "test"):
        if splits[split] is not None:
            check_evaluation_labels(module, split, splits[split])
    trainer = Trainer(recipe.trainer, output_dir=recipe.output_dir, strategies=strategies,
                      callbacks=[*named, *callbacks], overwrite=recipe.overwrite,
                      resume=recipe.resume, run_config=recipe.to_dict())
    return trainer.fit(module, train_data=splits["train"], val_data=splits["val"],
                       test_data=splits["test"] if recipe.task else None)


# ---------------------------------------------------------------------------------------------- parsing
def _deep_copy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _deep_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_deep_copy(v) for v in value]
    return value


def _check_names(data: Mapping[str, Any], where: str) -> None:
    """Component names are names, paths are strings: a boolean, number or mapping given for one is refused here,
    with what is allowed, rather than deep inside a factory."""
    for key in ("backbone", "task", "objective"):
        value = data.get(key)
        if (value is not None or key == "backbone") and (not isinstance(value, str) or not value.strip()):
            raise ConfigError(f"{where}: {key} must be a component name (a string, `polygraft list {key}s`), got "
                              f"{value!r}")
    if not isinstance(data.get("overwrite", False), bool):
        raise ConfigError(f"{where}: overwrite must be true or false, got {data['overwrite']!r}")
    for key in ("weights", "output_dir", "resume"):
        value = data.get(key)
        if value is not None and not isinstance(value, str | Path):
            what = {"weights": "a registered alias, a local path or a polygraft run (or null for random init)",
                    "output_dir": "a folder path", "resume": "last or a checkpoint path"}[key]
            raise ConfigError(f"{where}: {key} must be {what}, got {type(value).__name__} {value!r}")
    labels = data.get("labels")
    if labels is not None and (not isinstance(labels, list) or not all(isinstance(v, str | int) for v in labels)):
        raise ConfigError(f"{where}: labels must be a list of label names, got {labels!r}")


def _check_keys(data: Mapping[str, Any], valid: set[str], where: str) -> None:
    for key in data:
        if key not in valid:
            near = closest(str(key), sorted(valid), n=1)
            hint = f"; did you mean {near[0]!r}?" if near else f"; valid keys: {', '.join(sorted(valid))}"
            raise ConfigError(f"{where}: unknown key {key!r}{hint}")


def apply_override(data: dict[str, Any], override: str) -> None:
    """``trainer.max_steps=5`` → data["trainer"]["max_steps"] = 5 (the value is parsed as YAML)."""
    if "=" not in override:
        raise ConfigError(f"override {override!r} must look like key.sub=value")
    dotted, _, text = override.partition("=")
    try:
        value = yaml.safe_load(text) if text else None
    except yaml.YAMLError as exc:
        raise ConfigError(f"override {override!r}: cannot parse value: {exc}") from exc
    keys = dotted.strip().split(".")
    target = data
    for key in keys[:-1]:
        child = target.setdefault(key, {})
        if not isinstance(child, dict):
            raise ConfigError(f"override {override!r}: {key!r} is not a mapping")
        target = child
    target[keys[-1]] = value

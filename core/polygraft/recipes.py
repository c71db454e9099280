"""Run a recipe: build data, module, strategies and trainer from a :class:`~polygraft.config.RunConfig`.

Example:
    >>> import tempfile
    >>> from polygraft.config import RunConfig
    >>> from polygraft.recipes import run_recipe
    >>> cfg = RunConfig.from_dict({"task": "classification", "backbone": "toy",
    ...     "backbone_options": {"in_features": 8},
    ...     "data": {"train": {"dataset": "synthetic-classification", "size": 32}},
    ...     "trainer": {"max_steps": 3, "batch_size": 8, "progress": False},
    ...     "output_dir": tempfile.mkdtemp()})
    >>> run_recipe(cfg).metrics == {}
    True
"""

from __future__ import annotations

from typing import Any

from polygraft.api import create_objective, create_task, load_dataset
from polygraft.config import RunConfig
from polygraft.errors import ConfigError, DataError
from polygraft.interfaces import DataSource, TrainingModule
from polygraft.plugins import Catalog, build_catalog
from polygraft.training.trainer import FitResult, Trainer


def load_split(config: RunConfig, split: str, catalog: Catalog) -> DataSource | None:
    if split not in config.data:
        return None
    name, options = config.dataset_options(split)
    return load_dataset(name, catalog=catalog, **options)


def label_names_for(config: RunConfig, train: DataSource) -> list[str]:
    """Recipe labels, else the train source's, else every label seen in the train data (sorted)."""
    if config.labels:
        return list(config.labels)
    if train.label_names:
        return list(train.label_names)
    key = config.task_options.get("label_key", "label")
    seen = set()
    for index in range(len(train)):
        example = train[index]
        if key not in example:
            raise DataError(f"example {index} has no {key!r}; set task_options.label_key", path=example.get("_origin"))
        seen.add(str(example[key]))
    return sorted(seen)


def build_module(config: RunConfig, train: DataSource, catalog: Catalog) -> TrainingModule:
    if config.task:
        return create_task(config.task, backbone=config.backbone, weights=config.weights,
                           label_names=label_names_for(config, train), backbone_options=config.backbone_options,
                           catalog=catalog, **config.task_options)
    return create_objective(config.objective, backbone=config.backbone, weights=config.weights,
                            backbone_options=config.backbone_options, catalog=catalog, **config.objective_options)


def build_callbacks(items: list[Any], catalog: Catalog) -> list[Any]:
    callbacks = []
    for item in items:
        options = dict(item) if isinstance(item, dict) else {"name": item}
        name = options.pop("name", None)
        if not name:
            raise ConfigError(f"callback entry {item!r} needs a name")
        callbacks.append(catalog.get("callback", name).load_factory()(**options))
    return callbacks


def run_recipe(config: RunConfig, *, catalog: Catalog | None = None) -> FitResult:
    """Fine-tune (``task``) or pretrain (``objective``) as the recipe says; returns the fit result."""
    import torch

    from polygraft.finetune import build_strategies

    catalog = catalog or build_catalog()
    train = load_split(config, "train", catalog)
    val = load_split(config, "val", catalog)
    torch.manual_seed(config.trainer.seed)  # the seed fixes the initial weights of head and random backbones too
    module = build_module(config, train, catalog)
    strategies = build_strategies(config.strategy, catalog) if config.task else []
    trainer = Trainer(config.trainer, output_dir=config.output_dir, strategies=strategies,
                      callbacks=build_callbacks(config.callbacks, catalog), resume=config.resume,
                      run_config=config.to_dict())
    test = load_split(config, "test", catalog) if config.task else None
    return trainer.fit(module, train_data=train, val_data=val, test_data=test)

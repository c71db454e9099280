"""polygraft: multimodal transfer learning for PyTorch.

Nothing heavy is imported by ``import polygraft``: the API below loads torch and plugins on first use.

Example:
    >>> import polygraft
    >>> [row["name"] for row in polygraft.list_components("datasets")][:1]
    ['synthetic-classification']
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from polygraft.hookspecs import hookimpl
from polygraft.version import PLUGIN_API, __version__

_LAZY = {
    "create_backbone": "polygraft.api",
    "create_task": "polygraft.api",
    "create_objective": "polygraft.api",
    "load_dataset": "polygraft.api",
    "list_components": "polygraft.api",
    "load": "polygraft.api",
    "resolve_weights": "polygraft.api",
    "build_catalog": "polygraft.plugins",
    "Features": "polygraft.features",
    "Trainer": "polygraft.training.trainer",
    "TrainerConfig": "polygraft.training.config",
    "Recipe": "polygraft.recipe",
    "run_recipe": "polygraft.recipe",
    "TruncationCounter": "polygraft.builtin.callbacks",
}

if TYPE_CHECKING:
    from polygraft.api import (
        create_backbone,
        create_objective,
        create_task,
        list_components,
        load,
        load_dataset,
        resolve_weights,
    )
    from polygraft.builtin.callbacks import TruncationCounter
    from polygraft.features import Features
    from polygraft.plugins import build_catalog
    from polygraft.recipe import Recipe, run_recipe
    from polygraft.training.config import TrainerConfig
    from polygraft.training.trainer import Trainer

__all__ = [
    "PLUGIN_API",
    "Features",
    "Recipe",
    "Trainer",
    "TrainerConfig",
    "TruncationCounter",
    "__version__",
    "build_catalog",
    "create_backbone",
    "create_objective",
    "create_task",
    "hookimpl",
    "list_components",
    "load",
    "load_dataset",
    "resolve_weights",
    "run_recipe",
]


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'polygraft' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value
    return value

"""Saving and rebuilding models: ``model/`` = safetensors weights + ``polygraft.json`` (how to rebuild).

The JSON names the registered backbone and task with the options that rebuild their architecture, the label
names, and the preprocessing. Assets a backbone writes (a Hugging Face config, a tokenizer) sit beside it and
are referenced by relative paths, so a model directory can be moved or copied freely.

Example:
    >>> import tempfile, polygraft
    >>> from polygraft.model_io import save_model, load_model
    >>> task = polygraft.create_task("classification", backbone="toy", label_names=["a", "b"],
    ...                              backbone_options={"in_features": 2})
    >>> directory = save_model(task, tempfile.mkdtemp())
    >>> load_model(directory).label_names
    ['a', 'b']
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from polygraft.errors import WeightsError

if TYPE_CHECKING:
    from torch import nn

    from polygraft.interfaces import Backbone, TrainingModule
    from polygraft.plugins import Catalog

CONFIG_NAME = "polygraft.json"
WEIGHTS_NAME = "model.safetensors"
FORMAT_VERSION = 1


def backbone_config(backbone: Backbone, directory: Path) -> dict[str, Any]:
    """Export the backbone's rebuild assets under ``directory/backbone`` and describe it."""
    asset_dir = Path(directory) / "backbone"
    asset_dir.mkdir(parents=True, exist_ok=True)
    options = backbone.export(asset_dir)
    relative = []
    for key, value in list(options.items()):
        if isinstance(value, str | Path) and _is_inside(Path(value), Path(directory)):
            options[key] = os.path.relpath(Path(value).resolve(), Path(directory).resolve())
            relative.append(key)
    if not any(asset_dir.iterdir()):
        asset_dir.rmdir()
    return {
        "backbone": {"name": backbone.spec_name, "options": options, "relative_paths": relative},
        "preprocessing": backbone.preprocessor.describe(),
    }


def _is_inside(path: Path, directory: Path) -> bool:
    try:
        path.resolve().relative_to(directory.resolve())
    except (ValueError, OSError):
        return False
    return path.exists()


def save_model(module: TrainingModule, directory: str | Path) -> Path:
    """Write ``polygraft.json`` and ``model.safetensors`` for a task or objective into ``directory``."""
    from safetensors.torch import save_model as save_safetensors

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    config = {"format_version": FORMAT_VERSION, **module.export(directory)}
    target = module.backbone if config.get("kind") == "backbone" else module
    save_safetensors(target, str(directory / WEIGHTS_NAME))
    (directory / CONFIG_NAME).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    return directory


def find_model_dir(path: str | Path) -> Path | None:
    """``path`` itself or ``path/model`` when it holds a polygraft model; else None."""
    path = Path(path)
    for candidate in (path, path / "model"):
        if (candidate / CONFIG_NAME).is_file():
            return candidate
    return None


def read_model_config(model_dir: Path) -> dict[str, Any]:
    try:
        config = json.loads((model_dir / CONFIG_NAME).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise WeightsError(f"{model_dir / CONFIG_NAME}: cannot read the model description: {exc}") from exc
    if config.get("format_version") != FORMAT_VERSION:
        raise WeightsError(f"{model_dir}: unsupported model format {config.get('format_version')!r}")
    return config


def backbone_options(config: dict[str, Any], model_dir: Path) -> dict[str, Any]:
    """The saved backbone options with relative asset paths made absolute again."""
    section = config["backbone"]
    options = dict(section["options"])
    for key in section.get("relative_paths", []):
        options[key] = str((model_dir / options[key]).resolve())
    return options


def load_weights_into(module: nn.Module, weights_file: Path, *, prefix: str = "") -> None:
    """Load safetensors weights strictly (only keys under ``prefix`` when given)."""
    from safetensors.torch import load_file

    state = load_file(str(weights_file))
    if prefix:
        state = {key[len(prefix):]: value for key, value in state.items() if key.startswith(prefix)}
        if not state:
            raise WeightsError(f"{weights_file}: no tensors under {prefix!r}")
    own = module.state_dict()
    # tied weights are stored once by safetensors; fill the aliases from their twin
    for key in own:
        if key not in state:
            twin = _tied_twin(module, key)
            if twin is not None and twin in state:
                state[key] = state[twin]
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected:
        raise WeightsError(
            f"{weights_file} does not match the rebuilt model: missing {missing[:5]}, unexpected {unexpected[:5]}"
            " — was it saved by a different polygraft recipe?"
        )
    module.load_state_dict(state, strict=True)


def _tied_twin(module: nn.Module, key: str) -> str | None:
    params = dict(module.named_parameters(remove_duplicate=False))
    target = params.get(key)
    if target is None:
        return None
    for name, param in params.items():
        if name != key and param is target:
            return name
    return None


def load_model(path: str | Path, *, catalog: Catalog | None = None) -> Any:
    """Rebuild a saved task (ready to ``predict``) or backbone from a run or model directory."""
    from polygraft.api import create_backbone, create_task

    model_dir = find_model_dir(path)
    if model_dir is None:
        raise WeightsError(f"{path}: no {CONFIG_NAME} here or in {Path(path) / 'model'}; is it a polygraft run?")
    config = read_model_config(model_dir)
    if config["kind"] == "backbone":
        return create_backbone(config["backbone"]["name"], weights=model_dir, catalog=catalog)
    backbone = create_backbone(
        config["backbone"]["name"], catalog=catalog, **backbone_options(config, model_dir)
    )
    task = create_task(config["task"], backbone=backbone, label_names=config["label_names"],
                       catalog=catalog, **config.get("options", {}))
    load_weights_into(task, model_dir / WEIGHTS_NAME)
    task.eval()
    return task

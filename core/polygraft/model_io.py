"""The ``model/`` format: ``model.safetensors`` (weights) + ``polygraft.json`` (how to rebuild). Reading and writing
only; :func:`polygraft.load` rebuilds models from it.

``polygraft.json`` names the registered backbone and task with the options that rebuild their architecture, the
label names, and the preprocessing's description. Assets a backbone writes (a Hugging Face config, a tokenizer)
sit beside it under ``backbone/`` and are referenced by relative paths, so a model directory can be moved freely.
Anything that does not look like that format (a pickle in place of the safetensors file, a truncated file, a JSON
without its keys) is refused with a :class:`~polygraft.errors.WeightsError` naming the file; nothing is unpickled.

Example:
    >>> import json, tempfile, polygraft
    >>> from polygraft.model_io import save_model, read_model_config
    >>> task = polygraft.create_task("classification", backbone="toy", label_names=["a", "b"],
    ...                              backbone_options={"in_features": 2})
    >>> directory = save_model(task, tempfile.mkdtemp())
    >>> read_model_config(directory)["label_names"]
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

CONFIG_NAME = "polygraft.json"
WEIGHTS_NAME = "model.safetensors"
FORMAT_VERSION = 1
KINDS = ("task", "backbone")


def backbone_config(backbone: Backbone, directory: Path) -> dict[str, Any]:
    """Export the backbone's rebuild assets under ``directory/backbone`` and describe it."""
    asset_dir = Path(directory) / "backbone"
    asset_dir.mkdir(parents=True, exist_ok=True)
    options = dict(backbone.export(asset_dir))
    relative: list[Any] = []
    _relativise(options, Path(directory), (), relative)
    if not any(asset_dir.iterdir()):
        asset_dir.rmdir()
    try:
        json.dumps(options)
    except TypeError as exc:
        raise WeightsError(f"backbone {backbone.spec_name!r}: export() must return JSON-serialisable options ({exc}); "
                           "write tensors or objects into the export directory and return their paths") from exc
    return {
        "backbone": {"name": backbone.spec_name, "options": options, "relative_paths": relative},
        "preprocessing": json.loads(json.dumps(backbone.preprocessor.describe(), default=str)),
    }


def _relativise(options: dict[str, Any], directory: Path, at: tuple[str, ...], found: list[Any]) -> None:
    """Paths inside ``directory`` become relative, in place, also inside nested mappings (a composite backbone's
    parts); ``found`` gets each one's key (top level) or key path (nested, a list of keys)."""
    for key, value in list(options.items()):
        if isinstance(value, dict):
            options[key] = value = dict(value)
            _relativise(value, directory, (*at, key), found)
        elif isinstance(value, str | Path) and _is_inside(Path(value), directory):
            options[key] = os.path.relpath(Path(value).resolve(), directory.resolve())
            found.append([*at, key] if at else key)


def _is_inside(path: Path, directory: Path) -> bool:
    try:
        path.resolve().relative_to(directory.resolve())
    except (ValueError, OSError):
        return False
    return path.exists()


def save_model(module: TrainingModule, directory: str | Path) -> Path:
    """Write ``polygraft.json`` and ``model.safetensors`` for a task or objective into ``directory``."""
    section = module.export(Path(directory))
    target = module.backbone if section.get("kind") == "backbone" else module
    return _write(target, module.backbone, section, Path(directory), extra=(module,))


def save_backbone(backbone: Backbone, directory: str | Path, *, objective: str = "") -> Path:
    """A model directory holding ``backbone`` alone (what a pretraining run saves), loadable by ``polygraft.load``
    and as ``weights:`` of the same backbone."""
    return _write(backbone, backbone, {"kind": "backbone", "objective": objective}, Path(directory))


def _write(target: nn.Module, backbone: Backbone, section: dict[str, Any], directory: Path,
           extra: tuple[Any, ...] = ()) -> Path:
    from safetensors.torch import save_model as save_safetensors

    from polygraft.fingerprint import versions

    directory.mkdir(parents=True, exist_ok=True)
    config = {"format_version": FORMAT_VERSION, **section, **backbone_config(backbone, directory),
              "versions": versions(*extra, backbone, backbone.preprocessor)}
    save_safetensors(target, str(directory / WEIGHTS_NAME))
    (directory / CONFIG_NAME).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    return directory


def version_changes(config: dict[str, Any]) -> list[str]:
    """``"polygraft-text 0.1.0 (installed: 0.2.0)"`` for every distribution whose installed version differs from the
    one the model was saved with (``polygraft.json``'s ``versions``)."""
    from importlib.metadata import PackageNotFoundError, version

    changes = []
    for name, saved in sorted((config.get("versions") or {}).items()):
        try:
            installed = version(name)
        except PackageNotFoundError:
            installed = "not installed"
        if installed != saved:
            changes.append(f"{name} {saved} (installed: {installed})")
    return changes


def find_model_dir(path: str | Path) -> Path | None:
    """``path`` itself or ``path/model`` when it holds a polygraft model; else None."""
    from polygraft.paths import file_problem
    from polygraft.run import RunDirectory

    path = Path(path)
    for candidate in (path, RunDirectory(path, enabled=False).model_dir):
        if file_problem(candidate / CONFIG_NAME) is None:
            return candidate
    return None


def read_model_config(model_dir: str | Path) -> dict[str, Any]:
    """``polygraft.json``, checked for the keys a rebuild needs."""
    file = Path(model_dir) / CONFIG_NAME
    try:
        config = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise WeightsError(f"{file}: cannot read the model description ({type(exc).__name__}: {exc})") from None
    if not isinstance(config, dict):
        raise WeightsError(f"{file}: expected a JSON object describing the model")
    if config.get("format_version") != FORMAT_VERSION:
        raise WeightsError(f"{file}: unsupported model format {config.get('format_version')!r} "
                           f"(this polygraft reads format {FORMAT_VERSION})")
    if config.get("kind") not in KINDS:
        raise WeightsError(f"{file}: 'kind' must be one of {KINDS}, got {config.get('kind')!r}; the file is damaged "
                           "or was not written by polygraft")
    backbone = config.get("backbone")
    if not isinstance(backbone, dict) or not isinstance(backbone.get("name"), str) \
            or not isinstance(backbone.get("options", {}), dict):
        raise WeightsError(f"{file}: 'backbone' must hold the backbone's 'name' and 'options'")
    if config["kind"] == "task" and (not isinstance(config.get("task"), str)
                                     or not isinstance(config.get("label_names"), list)):
        raise WeightsError(f"{file}: a task model needs 'task' and 'label_names'")
    return config


def backbone_options(config: dict[str, Any], model_dir: Path) -> dict[str, Any]:
    """The saved backbone options with relative asset paths made absolute again."""
    import copy

    section = config["backbone"]
    options = copy.deepcopy(dict(section.get("options", {})))
    for key in section.get("relative_paths", []):
        keys = [key] if isinstance(key, str) else [str(k) for k in key]
        holder = options
        for part in keys[:-1]:
            holder = holder.get(part) if isinstance(holder, dict) else None
        if isinstance(holder, dict) and isinstance(holder.get(keys[-1]), str):
            holder[keys[-1]] = str((Path(model_dir) / holder[keys[-1]]).resolve())
    return options


def weights_file(model_dir: str | Path) -> Path:
    """The model directory's ``model.safetensors``, or a WeightsError saying it is missing."""
    file = Path(model_dir) / WEIGHTS_NAME
    if not file.is_file():
        raise WeightsError(f"{file} is missing: the model directory holds its description but not its weights; "
                           "copy the whole model/ folder, or train again")
    return file


def read_safetensors(file: str | Path) -> dict[str, Any]:
    """Tensors of a safetensors file; anything else (a pickle, a truncated file) is a WeightsError."""
    from safetensors.torch import load_file

    try:
        return load_file(str(file))
    except FileNotFoundError:
        raise WeightsError(f"{file} does not exist") from None
    except Exception as exc:  # SafetensorError: a pickle, a truncated or damaged header
        raise WeightsError(f"{file}: not a valid safetensors file ({type(exc).__name__}: {exc}); it is damaged, "
                           "truncated or in another format. polygraft loads weights only from safetensors (or "
                           "weights-only torch files) and never unpickles them.") from None


def load_weights_into(module: nn.Module, file: Path, *, prefix: str = "") -> None:
    """Load safetensors weights strictly (only keys under ``prefix`` when given)."""
    state = read_safetensors(file)
    if prefix:
        state = {key[len(prefix):]: value for key, value in state.items() if key.startswith(prefix)}
        if not state:
            raise WeightsError(f"{file}: no tensors under {prefix!r}")
    own = module.state_dict()
    # tied weights are stored once by safetensors; fill the aliases from their twin
    for key in own:
        if key not in state:
            twin = _tied_twin(module, key)
            if twin is not None and twin in state:
                state[key] = state[twin]
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = sorted(k for k in set(own) & set(state) if tuple(own[k].shape) != tuple(state[k].shape))
    if missing or unexpected or wrong:
        raise WeightsError(
            f"{file} does not match the rebuilt model: missing {missing[:5]}, unexpected {unexpected[:5]}, "
            f"wrong shapes {wrong[:5]} — was it saved by a different polygraft recipe?"
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

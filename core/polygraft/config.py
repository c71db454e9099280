"""Typed run configuration (a recipe) read from YAML with ``safe_load``, with dotted overrides.

Example:
    >>> from polygraft.config import RunConfig
    >>> cfg = RunConfig.from_dict({"task": "classification", "backbone": "toy",
    ...     "data": {"train": {"dataset": "synthetic-classification"}}}, overrides=["trainer.max_steps=5"])
    >>> cfg.trainer.max_steps
    5
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from polygraft.errors import ConfigError
from polygraft.training.config import TrainerConfig

DATA_SPLITS = ("train", "val", "test")


@dataclass
class RunConfig:
    """A recipe: what to train (task or objective), on which backbone and data, with which trainer settings."""

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
    source: str | None = None  # the YAML file it came from

    @classmethod
    def from_yaml(cls, path: str | Path, overrides: Sequence[str] = ()) -> RunConfig:
        path = Path(path)
        try:
            raw = yaml.safe_load(path.read_text()) or {}
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read recipe: {exc}") from exc
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: invalid YAML: {exc}") from exc
        if not isinstance(raw, dict):
            raise ConfigError(f"{path}: a recipe is a mapping of keys (task, backbone, data, trainer...)")
        config = cls.from_dict(raw, overrides=overrides, where=str(path))
        config.source = str(path)
        return config

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], *, overrides: Sequence[str] = (), where: str = "recipe") -> RunConfig:
        data = _deep_copy(raw)
        for override in overrides:
            _apply_override(data, override)
        _check_keys(data, {f.name for f in dataclasses.fields(cls)} - {"source"}, where)
        trainer_raw = data.pop("trainer", None) or {}
        if not isinstance(trainer_raw, dict):
            raise ConfigError(f"{where}: 'trainer' must be a mapping")
        _check_keys(trainer_raw, {f.name for f in dataclasses.fields(TrainerConfig)}, f"{where}: trainer")
        for key in ("backbone", "data"):
            if key not in data:
                raise ConfigError(f"{where}: missing required key {key!r}")
        if bool(data.get("task")) == bool(data.get("objective")):
            raise ConfigError(f"{where}: give exactly one of 'task' (finetune) or 'objective' (pretrain)")
        splits = data["data"]
        if not isinstance(splits, dict) or "train" not in splits:
            raise ConfigError(f"{where}: data needs a 'train' entry: data: {{train: {{dataset: NAME, ...}}}}")
        _check_keys(splits, set(DATA_SPLITS), f"{where}: data")
        for split, ref in splits.items():
            if not isinstance(ref, dict) or "dataset" not in ref:
                raise ConfigError(f"{where}: data.{split} must be a mapping with a 'dataset' name")
        if isinstance(data.get("strategy"), str | dict):
            data["strategy"] = [data["strategy"]]
        return cls(trainer=TrainerConfig(**trainer_raw), **data)

    def to_dict(self) -> dict[str, Any]:
        """The resolved recipe (every default filled in), as saved to ``config.yaml``."""
        out = dataclasses.asdict(self)
        out.pop("source")
        return out

    def dataset_options(self, split: str) -> tuple[str, dict[str, Any]]:
        ref = dict(self.data[split])
        name = ref.pop("dataset")
        ref.setdefault("split", split)
        return name, ref


def _deep_copy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _deep_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_deep_copy(v) for v in value]
    return value


def _check_keys(data: Mapping[str, Any], valid: set[str], where: str) -> None:
    for key in data:
        if key not in valid:
            close = difflib.get_close_matches(str(key), sorted(valid), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; valid keys: {', '.join(sorted(valid))}"
            raise ConfigError(f"{where}: unknown key {key!r}{hint}")


def _apply_override(data: dict[str, Any], override: str) -> None:
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

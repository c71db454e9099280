"""Trainer settings: one typed, documented dataclass (the ``trainer:`` section of a recipe).

Every field is checked against its type when the config is made (``batch_size: [4]``, ``max_steps: 2.5`` and
``lr: fast`` are errors saying what is allowed; YAML strings that spell numbers, such as ``5e-5``, are converted).
Early stopping and keeping the best checkpoint are callbacks, named in the recipe's ``callbacks:``.

Example:
    >>> from polygraft.training.config import TrainerConfig
    >>> TrainerConfig(max_steps=10, lr="1e-3").lr
    0.001
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, fields
from typing import Any

from polygraft.errors import ConfigError
from polygraft.inputs.cache.modes import cache_mode

PRECISIONS = ("32", "bf16-mixed", "fp16-mixed")
SCHEDULES = ("cosine", "linear", "constant")
OPTIMIZERS = ("adamw", "sgd")
DISTRIBUTED = ("ddp", "fsdp")

MAX_COUNT = 2**31 - 1
"""The largest batch size, step or epoch count a recipe may ask for."""

DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


def check_device(value: str) -> None:
    """``trainer.device``: ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``."""
    if not DEVICE.match(value):
        raise ConfigError(f"trainer.device must be auto, cpu, cuda, cuda:N or mps, got {value!r}")


REMOVED = {
    "early_stopping": "callbacks: [{name: early-stopping, monitor: val/loss, patience: 3}]",
    "monitor": "callbacks: [{name: best-checkpoint, monitor: val/accuracy}]",
    "monitor_mode": "callbacks: [{name: best-checkpoint, monitor: val/accuracy, mode: max}]",
    "tensorboard": "callbacks: [tensorboard] (event files in the run directory; also: mlflow)",
}
"""Trainer keys that moved elsewhere → what to write instead."""


OPTION_DOCS = {
    "max_epochs": "passes over the training data (ignored when `max_steps` is set)",
    "max_steps": "optimizer steps to train; bounds the run instead of `max_epochs`",
    "batch_size": "examples per micro-batch on each process",
    "eval_batch_size": "examples per evaluation batch; null = `batch_size`",
    "lr": "peak learning rate",
    "weight_decay": "decoupled weight decay (none on biases, norms and other 1-D parameters)",
    "optimizer": "`adamw` (fused kernels on CPU, CUDA and MPS) or `sgd`",
    "momentum": "SGD momentum (`optimizer: sgd` only)",
    "schedule": "learning-rate decay after warmup: `cosine`, `linear` or `constant`",
    "warmup_steps": "linear warmup steps; null = `warmup_ratio` of the planned steps",
    "warmup_ratio": "linear warmup as a share of the planned steps, in [0, 1)",
    "grad_accum": "micro-batches per optimizer step; an epoch's last, shorter chunk is stepped too",
    "clip_grad_norm": "clip the global gradient norm to this value; null = no clipping",
    "precision": "`32`, `bf16-mixed` or `fp16-mixed` (autocast; a gradient scaler for fp16)",
    "device": "`auto`, `cpu`, `cuda`, `cuda:N` or `mps`",
    "compile": "run the model through `torch.compile`",
    "channels_last": "channels-last memory format for the model: `auto` (on for backbones that declare "
                     "convolutional features, `Backbone.convolutional`), `true` or `false`",
    "num_workers": "DataLoader workers; null = chosen per split from the machine and what is still done per read",
    "cache": "keep prepared examples across epochs: `auto`, `memory`, `disk` or `false`",
    "cache_memory_mb": "memory for kept examples; null = a quarter of the available memory",
    "eval_every": "validate every N optimizer steps; null = at the end of each epoch",
    "log_every": "write a `metrics.jsonl` row every N optimizer steps",
    "checkpoint_every": "checkpoint every N optimizer steps; null = at every validation point",
    "seed": "fixes initial weights, data order, augmentation and dropout",
    "deterministic": "`torch.use_deterministic_algorithms(warn_only=True)` during the fit",
    "skip_nonfinite": "skip (and count) optimizer steps whose loss is NaN or infinite instead of stopping",
    "progress": "show a progress bar",
    "distributed": "under torchrun: `ddp` (a full copy per process) or `fsdp` (parameters, gradients and optimizer "
                   "states sharded across processes, FSDP2; distributed checkpoints)",
    "drop_last": "drop each epoch's last, incomplete training batch",
    "group_by_length": "batch training examples of similar length together (text, audio): less padding",
}
"""What each trainer option means (``docs/recipes.md`` is generated from these and the field types)."""


@dataclass
class TrainerConfig:
    """How to train. Every field has a sensible default; ``max_steps`` or ``max_epochs`` bounds the run."""

    max_epochs: int | None = 1
    max_steps: int | None = None
    batch_size: int = 32
    eval_batch_size: int | None = None
    lr: float = 1e-3
    weight_decay: float = 0.01
    optimizer: str = "adamw"  # adamw | sgd
    momentum: float = 0.9  # sgd only
    schedule: str = "cosine"
    warmup_steps: int | None = None
    warmup_ratio: float = 0.0
    grad_accum: int = 1
    clip_grad_norm: float | None = 1.0
    precision: str = "32"
    device: str = "auto"  # auto | cpu | cuda | cuda:N | mps
    compile: bool = False
    channels_last: bool | str = "auto"  # auto: on where the backbone is convolutional (Backbone.convolutional)
    num_workers: int | None = None  # DataLoader workers; null = chosen per split from the machine and the data
    cache: bool | str = "auto"  # keep prepared examples across epochs: auto | memory | disk | false (inputs/cache)
    cache_memory_mb: int | None = None  # memory for kept examples; null = a quarter of the available memory
    eval_every: int | None = None  # steps; None = at the end of each epoch
    log_every: int = 10
    checkpoint_every: int | None = None  # steps; None = each validation
    seed: int = 0
    deterministic: bool = False
    skip_nonfinite: bool = False
    progress: bool = True
    distributed: str = "ddp"  # ddp | fsdp (under torchrun)
    drop_last: bool = False
    group_by_length: bool = False  # batch similar lengths together (text, audio): less padding

    def uses_channels_last(self, backbone: Any) -> bool:
        """Whether a run on ``backbone`` uses the channels-last memory format: the option when set, else
        (``auto``) what the backbone declares (``Backbone.convolutional``: channels-last speeds convolutions up
        on CPU and GPU, and does nothing for transformers)."""
        if isinstance(self.channels_last, bool):
            return self.channels_last
        return bool(getattr(backbone, "convolutional", False))

    def __post_init__(self) -> None:
        from polygraft.options import Option, check_value

        for spec in fields(self):
            annotation = eval(str(spec.type))
            option = Option(spec.name, annotation=annotation, annotation_text=str(spec.type))
            setattr(self, spec.name, check_value(option, getattr(self, spec.name), what="trainer"))
        for spec in fields(self):
            value = getattr(self, spec.name)
            if isinstance(value, float) and not math.isfinite(value):
                raise ConfigError(f"trainer.{spec.name} must be a finite number, got {value}")
        for name, allowed in (("precision", PRECISIONS), ("schedule", SCHEDULES), ("optimizer", OPTIMIZERS),
                              ("distributed", DISTRIBUTED)):
            if getattr(self, name) not in allowed:
                raise ConfigError(f"trainer.{name} must be one of {allowed}, got {getattr(self, name)!r}")
        if self.max_steps is None and self.max_epochs is None:
            raise ConfigError("set trainer.max_steps or trainer.max_epochs (both are None)")
        for name in ("batch_size", "grad_accum", "log_every"):
            if not 1 <= getattr(self, name) <= MAX_COUNT:
                raise ConfigError(f"trainer.{name} must be in [1, {MAX_COUNT:,}], got {getattr(self, name)}")
        for name in ("max_steps", "max_epochs", "eval_every", "checkpoint_every", "eval_batch_size", "warmup_steps"):
            value = getattr(self, name)
            low = 0 if name == "warmup_steps" else 1
            if value is not None and not low <= value <= MAX_COUNT:
                raise ConfigError(f"trainer.{name} must be in [{low}, {MAX_COUNT:,}] (or null), got {value}")
        check_device(self.device)
        workers = self.num_workers if self.num_workers is not None else 0
        if self.lr < 0 or self.weight_decay < 0 or workers < 0 or not 0 <= self.warmup_ratio < 1:
            raise ConfigError("trainer.lr, weight_decay and num_workers must be ≥ 0 and warmup_ratio in [0, 1); got "
                              f"{self.lr}, {self.weight_decay}, {self.num_workers} and {self.warmup_ratio}")
        if self.cache_memory_mb is not None and self.cache_memory_mb < 0:
            raise ConfigError(f"trainer.cache_memory_mb must be ≥ 0 (or null), got {self.cache_memory_mb}")
        if self.channels_last not in (True, False, "auto"):
            raise ConfigError(f"trainer.channels_last must be auto, true or false, got {self.channels_last!r}")
        cache_mode(self.cache)  # one of auto | memory | disk | off, or true / false

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

from dataclasses import dataclass, fields

from polygraft.errors import ConfigError

PRECISIONS = ("32", "bf16-mixed", "fp16-mixed")
SCHEDULES = ("cosine", "linear", "constant")
OPTIMIZERS = ("adamw", "sgd")

CACHE_MODES = ("auto", "memory", "disk", "off")


def cache_mode(value: bool | str) -> str:
    """``trainer.cache`` normalised: ``true``/``auto`` → ``auto``; ``false``/``off`` → ``off``; ``memory``; ``disk``."""
    if value is True or value is False:
        return "auto" if value else "off"
    mode = str(value).strip().lower()
    mode = {"true": "auto", "on": "auto", "false": "off", "no": "off", "none": "off"}.get(mode, mode)
    if mode not in CACHE_MODES:
        raise ConfigError(f"trainer.cache must be one of {CACHE_MODES} (or true/false), got {value!r}")
    return mode


REMOVED = {
    "early_stopping": "callbacks: [{name: early-stopping, monitor: val/loss, patience: 3}]",
    "monitor": "callbacks: [{name: best-checkpoint, monitor: val/accuracy}]",
    "monitor_mode": "callbacks: [{name: best-checkpoint, monitor: val/accuracy, mode: max}]",
}
"""Trainer keys that moved elsewhere → what to write instead."""


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
    channels_last: bool = False
    num_workers: int | None = None  # DataLoader workers; null = chosen per split from the machine and the data
    cache: bool | str = "auto"  # keep prepared examples across epochs: auto | memory | disk | false (see prepared.py)
    cache_memory_mb: int | None = None  # memory for kept examples; null = a quarter of the available memory
    eval_every: int | None = None  # steps; None = at the end of each epoch
    log_every: int = 10
    checkpoint_every: int | None = None  # steps; None = each validation
    seed: int = 0
    deterministic: bool = False
    skip_nonfinite: bool = False
    progress: bool = True
    tensorboard: bool = False
    drop_last: bool = False
    group_by_length: bool = False  # batch similar lengths together (text, audio): less padding

    def __post_init__(self) -> None:
        from polygraft.options import Option, check_value

        for spec in fields(self):
            annotation = eval(str(spec.type))
            option = Option(spec.name, annotation=annotation, annotation_text=str(spec.type))
            setattr(self, spec.name, check_value(option, getattr(self, spec.name), what="trainer"))
        for name, allowed in (("precision", PRECISIONS), ("schedule", SCHEDULES), ("optimizer", OPTIMIZERS)):
            if getattr(self, name) not in allowed:
                raise ConfigError(f"trainer.{name} must be one of {allowed}, got {getattr(self, name)!r}")
        if self.max_steps is None and self.max_epochs is None:
            raise ConfigError("set trainer.max_steps or trainer.max_epochs (both are None)")
        for name in ("batch_size", "grad_accum", "log_every"):
            if getattr(self, name) < 1:
                raise ConfigError(f"trainer.{name} must be ≥ 1, got {getattr(self, name)}")
        for name in ("max_steps", "max_epochs", "eval_every", "checkpoint_every", "eval_batch_size"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"trainer.{name} must be ≥ 1 (or null), got {value}")
        workers = self.num_workers if self.num_workers is not None else 0
        if self.lr < 0 or self.weight_decay < 0 or workers < 0 or not 0 <= self.warmup_ratio < 1:
            raise ConfigError("trainer.lr, weight_decay and num_workers must be ≥ 0 and warmup_ratio in [0, 1); got "
                              f"{self.lr}, {self.weight_decay}, {self.num_workers} and {self.warmup_ratio}")
        if self.cache_memory_mb is not None and self.cache_memory_mb < 0:
            raise ConfigError(f"trainer.cache_memory_mb must be ≥ 0 (or null), got {self.cache_memory_mb}")
        cache_mode(self.cache)  # one of auto | memory | disk | off, or true / false

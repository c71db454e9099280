"""Optimizer and learning-rate schedule.

AdamW by default (fused kernels on CUDA, CPU and MPS), no weight decay on norms, biases and other 1-D
parameters (the rule lives in :mod:`polygraft.finetune.groups`, shared with the strategies); linear warmup then
cosine, linear or constant.

Example:
    >>> import torch
    >>> from polygraft.training.config import TrainerConfig
    >>> from polygraft.training.optim import build_optimizer, default_param_groups
    >>> model = torch.nn.Linear(2, 2)
    >>> optimizer = build_optimizer(default_param_groups(model, weight_decay=0.1), TrainerConfig(), torch.device("cpu"))
    >>> [group["weight_decay"] for group in optimizer.param_groups]
    [0.1, 0.0]
"""

from __future__ import annotations

import math
from typing import Any

import torch

from polygraft.finetune.groups import default_param_groups, is_no_decay
from polygraft.training.config import TrainerConfig

__all__ = ["build_optimizer", "build_scheduler", "default_param_groups", "is_no_decay", "warmup_steps"]


def build_optimizer(groups: list[dict[str, Any]], config: TrainerConfig, device: torch.device) -> torch.optim.Optimizer:
    groups = [group for group in groups if group["params"]]
    if config.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    # fused kernels exist for CUDA, CPU and MPS in torch ≥ 2.8 and are several times faster than foreach
    # on CPU (136 → 29 ms per step for 22M parameters here); keep foreach for anything else
    kwargs: dict[str, Any] = {"fused": True} if device.type in ("cuda", "cpu", "mps") else {"foreach": True}
    return torch.optim.AdamW(groups, lr=config.lr, weight_decay=config.weight_decay, **kwargs)


def warmup_steps(config: TrainerConfig, total_steps: int) -> int:
    if config.warmup_steps is not None:
        return config.warmup_steps
    return int(config.warmup_ratio * total_steps)


def build_scheduler(optimizer: torch.optim.Optimizer, config: TrainerConfig,
                    total_steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warmup, then the configured decay to zero at ``total_steps``."""
    warmup = warmup_steps(config, total_steps)
    schedule = config.schedule

    def factor(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / warmup
        if schedule == "constant":
            return 1.0
        progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
        if schedule == "linear":
            return 1.0 - progress
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)

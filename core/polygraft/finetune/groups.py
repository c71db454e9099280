"""Optimizer parameter groups: the one no-weight-decay rule, and the default groups every strategy starts from.

Example:
    >>> import torch
    >>> from polygraft.finetune.groups import default_param_groups
    >>> groups = default_param_groups(torch.nn.Linear(2, 2), weight_decay=0.1)
    >>> [g["weight_decay"] for g in groups]
    [0.1, 0.0]
"""

from __future__ import annotations

from typing import Any

from torch import nn


def is_no_decay(name: str, param: nn.Parameter) -> bool:
    """The one no-weight-decay rule: biases, norm weights and every other 1-D parameter get none."""
    return param.ndim <= 1 or name.endswith(".bias") or "norm" in name.lower()


def default_param_groups(module: nn.Module, *, weight_decay: float) -> list[dict[str, Any]]:
    """Every parameter (frozen ones simply get no gradient), split into decay and no-decay groups."""
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    for name, param in module.named_parameters():
        (no_decay if is_no_decay(name, param) else decay).append(param)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]

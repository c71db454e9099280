"""Auxiliary per-branch heads: a fusion backbone's branches each get a head of the task's kind, and their losses,
times the backbone's ``auxiliary_loss_weight``, join the task's loss (AutoGluon MultiModal's ``loss_weight``).

A backbone asks for them by exposing ``auxiliary_dims`` (branch → feature width, empty for none) and
``auxiliary_loss_weight``; its features then carry ``branch_pooled`` and ``branch_present`` (see
``polygraft.fusion.layers.FusionFeatures``). Each branch's loss is averaged over the examples that have that
branch. Classification, regression and multi-label classification support them; the heads are used in training
only (predictions come from the fused head).

Example:
    >>> import torch
    >>> from polygraft.features import Features
    >>> from polygraft.tasks.auxiliary import branch_loss
    >>> head = torch.nn.Linear(4, 1)
    >>> loss = branch_loss(lambda f: head(f.pooled), torch.ones(3, 4), torch.tensor([True, False, True]),
    ...                    lambda out: out.squeeze(-1) ** 2)
    >>> loss.shape
    torch.Size([])
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from polygraft.features import Features


def auxiliary_heads(backbone: Any, make_head: Callable[[int], nn.Module]) -> nn.ModuleDict | None:
    """One head per branch when the backbone asks for them (``auxiliary_dims``), else ``None``."""
    dims = getattr(backbone, "auxiliary_dims", None) or {}
    if not dims:
        return None
    return nn.ModuleDict({name: make_head(int(dim)) for name, dim in dims.items()})


def branch_loss(head: Callable[[Features], torch.Tensor], pooled: torch.Tensor, present: torch.Tensor,
                row_loss: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """Mean of ``row_loss(head(pooled))`` (one loss per example) over the examples where ``present``; zero (with
    gradients still reaching the head) when none is."""
    losses = row_loss(head(Features(pooled=pooled)))
    weight = present.to(losses.dtype)
    return (losses * weight).sum() / weight.sum().clamp_min(1.0)


def auxiliary_loss(heads: nn.ModuleDict | None, features: Features, weight: float,
                   row_loss: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor | None:
    """``weight`` × the sum of the branch heads' losses, or ``None`` without heads."""
    pooled = getattr(features, "branch_pooled", None)
    present = getattr(features, "branch_present", None)
    if heads is None or not pooled or present is None:
        return None
    total = sum(branch_loss(head, pooled[name], present[name], row_loss) for name, head in heads.items())
    return weight * total  # type: ignore[return-value]


__all__ = ["auxiliary_heads", "auxiliary_loss", "branch_loss"]

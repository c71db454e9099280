"""Losses for imbalanced classes: class weights (``auto`` = scikit-learn's "balanced") and the focal loss.

``focal_loss`` is Lin et al.'s (2017) multi-class focal loss ``-w_y (1 - p_y)^γ log p_y``, averaged the way
``torch.nn.functional.cross_entropy`` averages with class weights (divided by the summed weights of the targets),
so ``gamma=0`` is exactly the weighted cross-entropy.

Example:
    >>> import torch
    >>> from polygraft.tasks.losses import balanced_weights, focal_loss
    >>> [round(w, 4) for w in balanced_weights([0, 0, 0, 1], num_classes=2).tolist()]
    [0.6667, 2.0]
    >>> logits, target = torch.tensor([[2.0, 0.0], [0.0, 1.0]]), torch.tensor([0, 1])
    >>> bool(torch.isclose(focal_loss(logits, target, gamma=0.0), torch.nn.functional.cross_entropy(logits, target)))
    True
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch.nn import functional as F

from polygraft.errors import ConfigError
from polygraft.options import closest

LOSSES = ("cross-entropy", "focal")


def balanced_weights(label_ids: Sequence[int], *, num_classes: int) -> torch.Tensor:
    """``n_examples / (n_classes × count(class))`` per class (scikit-learn's ``compute_class_weight("balanced")``
    over the classes the data has); a class with no example gets 1."""
    counts = torch.bincount(torch.as_tensor(list(label_ids), dtype=torch.long), minlength=num_classes).double()
    seen = counts > 0
    weights = torch.ones(num_classes, dtype=torch.float64)
    weights[seen] = counts.sum() / (int(seen.sum()) * counts[seen])
    return weights.float()


def weights_from_mapping(mapping: Mapping[str, Any], label_names: Sequence[str]) -> torch.Tensor:
    """``{label: weight}`` (labels not named weigh 1) as a tensor in label order; unknown labels and weights
    that are not positive numbers are ConfigErrors."""
    weights = torch.ones(len(label_names))
    for label, weight in mapping.items():
        if str(label) not in label_names:
            near = closest(str(label), list(label_names), n=1)
            hint = f"; did you mean {near[0]!r}?" if near else ""
            raise ConfigError(f"class_weights: {label!r} is not a label{hint} Labels: {list(label_names)}")
        if isinstance(weight, bool) or not isinstance(weight, int | float) or not weight > 0:
            raise ConfigError(f"class_weights: the weight of {label!r} must be a positive number, got {weight!r}")
        weights[list(label_names).index(str(label))] = float(weight)
    return weights


def focal_loss(logits: torch.Tensor, target: torch.Tensor, *, gamma: float = 2.0, weight: torch.Tensor | None = None,
               reduction: str = "mean") -> torch.Tensor:
    """Multi-class focal loss (see the module docstring); ``reduction`` ``mean``, ``sum`` or ``none``."""
    log_p = F.log_softmax(logits.float(), dim=-1).gather(1, target.unsqueeze(1)).squeeze(1)
    losses = -((1.0 - log_p.exp()).clamp_min(0.0) ** gamma) * log_p
    scale = weight.to(losses)[target] if weight is not None else torch.ones_like(losses)
    losses = losses * scale
    if reduction == "none":
        return losses
    if reduction == "sum":
        return losses.sum()
    return losses.sum() / scale.sum().clamp_min(torch.finfo(losses.dtype).tiny)


def check_loss(loss: str, *, gamma: float, label_smoothing: float) -> None:
    """A known loss name (closest suggested), γ ≥ 0, and no label smoothing with focal."""
    if loss not in LOSSES:
        near = closest(str(loss), LOSSES, n=1)
        hint = f"; did you mean {near[0]!r}?" if near else ""
        raise ConfigError(f"classification: loss must be one of {', '.join(LOSSES)}, got {loss!r}{hint}")
    if gamma < 0:
        raise ConfigError(f"classification: focal_gamma must be ≥ 0, got {gamma}")
    if loss == "focal" and label_smoothing:
        raise ConfigError("classification: the focal loss does not combine with label_smoothing; set one of them")


__all__ = ["LOSSES", "balanced_weights", "check_loss", "focal_loss", "weights_from_mapping"]

"""Modality-free features: what every backbone yields and every head reads.

Example:
    >>> import torch
    >>> from polygraft.features import Features
    >>> f = Features(sequence=torch.ones(2, 3, 4), mask=torch.tensor([[1, 1, 0], [1, 0, 0]]).bool())
    >>> f.pool().shape
    torch.Size([2, 4])
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

Batch = dict[str, Any]
"""A collated batch: ``inputs`` (what the backbone reads: ``input_ids``, ``pixel_values``...), targets
(``labels``...) and ``meta`` (bookkeeping the model does not read: ``index``, ``truncated``, ``word_ids``...)."""


@dataclass
class Features:
    """Backbone output.

    Attributes:
        pooled: ``(B, D)`` one vector per example.
        sequence: ``(B, T, D)`` tokens or frames.
        mask: ``(B, T)`` bool, True where ``sequence`` is real (not padding).
        maps: multi-scale ``(B, C_i, H_i, W_i)`` feature maps, highest resolution first.
        strides: input pixels per map cell, one per map.
    """

    pooled: torch.Tensor | None = None
    sequence: torch.Tensor | None = None
    mask: torch.Tensor | None = None
    maps: list[torch.Tensor] | None = None
    strides: list[int] | None = None

    def pool(self) -> torch.Tensor:
        """A ``(B, D)`` vector: ``pooled`` if present, else masked mean of ``sequence``, else mean of the last map."""
        if self.pooled is not None:
            return self.pooled
        if self.sequence is not None:
            if self.mask is None:
                return self.sequence.mean(dim=1)
            weights = self.mask.to(self.sequence.dtype).unsqueeze(-1)
            return (self.sequence * weights).sum(1) / weights.sum(1).clamp_min(1.0)
        if self.maps:
            return self.maps[-1].mean(dim=(-2, -1))
        raise ValueError("Features is empty: the backbone produced neither pooled, sequence nor maps")


def move_to_device(batch: Any, device: torch.device, *, non_blocking: bool = True) -> Any:
    """Move every tensor in a (nested) batch to ``device`` once."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=non_blocking)
    if isinstance(batch, Mapping):
        return {key: move_to_device(value, device, non_blocking=non_blocking) for key, value in batch.items()}
    if isinstance(batch, list | tuple):
        return type(batch)(move_to_device(value, device, non_blocking=non_blocking) for value in batch)
    return batch


def batch_size_of(batch: Mapping[str, Any]) -> int:
    """Number of examples in a collated batch: the first tensor's leading dimension or a list's length, looking
    inside nested mappings (``{"inputs": {...}}``) when the top level holds neither."""
    for value in batch.values():
        if isinstance(value, torch.Tensor) and value.dim() > 0:
            return int(value.shape[0])
        if isinstance(value, list):
            return len(value)
    for value in batch.values():
        if isinstance(value, Mapping):
            try:
                return batch_size_of(value)
            except ValueError:
                continue
    raise ValueError("cannot tell the batch size: the batch holds no tensor or list")


def mostly_convolutional(model: torch.nn.Module) -> bool:
    """Whether most of ``model``'s weights sit in 2-D convolutions (a CNN, not a ViT whose only convolution is its
    patch embedding): the rule ``trainer.channels_last: auto`` follows through ``Backbone.convolutional``.

    Example:
        >>> from torch import nn
        >>> mostly_convolutional(nn.Sequential(nn.Conv2d(3, 8, 3), nn.Conv2d(8, 8, 3), nn.Linear(8, 2)))
        True
        >>> mostly_convolutional(nn.Sequential(nn.Conv2d(3, 8, 16), nn.Linear(8, 64), nn.Linear(64, 8)))
        False
    """
    conv = dense = 0
    for module in model.modules():
        count = sum(p.numel() for p in module.parameters(recurse=False))
        if isinstance(module, torch.nn.Conv2d):
            conv += count
        elif isinstance(module, torch.nn.Linear | torch.nn.MultiheadAttention | torch.nn.Embedding):
            dense += count
    return conv > dense

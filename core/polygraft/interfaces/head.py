"""The Head base class: reads only :class:`~polygraft.features.Features`, so it serves any modality."""

from __future__ import annotations

from typing import Any

from torch import nn

from polygraft.features import Features


class Head(nn.Module):
    """Base class of task heads (the feature kind a task reads is declared on its ``TaskSpec.consumes``)."""

    def forward(self, features: Features) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

"""Fusion layers: branch features (with presence) → one modality-free feature vector.

Every kind first makes one vector per branch and example: the branch's pooled features where the branch is
present (projected to ``hidden`` for ``mlp`` and ``transformer``), its learned "missing" embedding where it is not
(or where modality dropout dropped it while training). Then

* ``concat``: the vectors side by side (``feature_dim`` = the sum of the branches' widths);
* ``mlp``: AutoGluon MultiModal's late fusion: projections, concatenation, ``depth`` × (Linear, LayerNorm, GELU,
  Dropout) to ``hidden``;
* ``transformer``: one token per branch (plus each branch's sequence features with ``tokens: sequence``), a type
  embedding per branch, a CLS token, ``depth`` pre-norm Transformer layers; the CLS output is the feature.

Example:
    >>> import torch
    >>> from polygraft.fusion.layers import FusionLayers
    >>> fuse = FusionLayers({"a": 4, "b": 6}, kind="mlp", hidden=8)
    >>> present = {"a": torch.tensor([True, False]), "b": torch.tensor([True, True])}
    >>> fuse({"a": torch.randn(2, 4), "b": torch.randn(2, 6)}, present).shape
    torch.Size([2, 8])
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import torch
from torch import nn

from polygraft.features import Features

KINDS = ("mlp", "transformer", "concat")
TOKENS = ("pooled", "sequence")


@dataclass
class FusionFeatures(Features):
    """Fused features, plus what auxiliary per-branch heads read: each branch's own pooled features
    (``(B, D_branch)``, zeros where absent) and where each branch is present (``(B,)`` bool)."""

    branch_pooled: dict[str, torch.Tensor] = field(default_factory=dict)
    branch_present: dict[str, torch.Tensor] = field(default_factory=dict)


class FusionLayers(nn.Module):
    """The trainable fusion: projections, "missing" embeddings and the fusion network (see the module docstring)."""

    def __init__(self, dims: Mapping[str, int], *, kind: str = "mlp", hidden: int = 256, depth: int = 2,
                 heads: int = 4, dropout: float = 0.1, tokens: str = "pooled") -> None:
        super().__init__()
        self.kind, self.tokens, self.names = kind, tokens, list(dims)
        projected = kind != "concat"
        width = {name: hidden if projected else dim for name, dim in dims.items()}
        self.project = nn.ModuleDict({name: nn.Linear(dim, hidden) for name, dim in dims.items()}) if projected \
            else None
        self.missing = nn.ParameterDict({name: nn.Parameter(torch.randn(width[name]) * 0.02) for name in dims})
        self.net: nn.Module | None = None
        if kind == "mlp":
            layers: list[nn.Module] = []
            size = hidden * len(dims)
            for _ in range(depth):
                layers += [nn.Linear(size, hidden), nn.LayerNorm(hidden), nn.GELU(), nn.Dropout(dropout)]
                size = hidden
            self.net = nn.Sequential(*layers)
            self.out_dim = size
        elif kind == "transformer":
            self.cls = nn.Parameter(torch.randn(1, 1, hidden) * 0.02)
            self.type_embedding = nn.Parameter(torch.randn(len(dims), hidden) * 0.02)
            layer = nn.TransformerEncoderLayer(hidden, heads, dim_feedforward=2 * hidden, dropout=dropout,
                                               activation="gelu", batch_first=True, norm_first=True)
            self.net = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
            self.norm = nn.LayerNorm(hidden)
            self.out_dim = hidden
        else:
            self.out_dim = sum(dims.values())

    def branch_vector(self, name: str, pooled: torch.Tensor, use: torch.Tensor) -> torch.Tensor:
        """``(B, width)``: the (projected) pooled features where ``use``, the branch's missing embedding elsewhere."""
        value = self.project[name](pooled) if self.project is not None else pooled
        missing = self.missing[name].to(value.dtype).expand_as(value)
        return torch.where(use.unsqueeze(-1), value, missing)

    def forward(self, pooled: Mapping[str, torch.Tensor], use: Mapping[str, torch.Tensor],
                sequences: Mapping[str, tuple[torch.Tensor, torch.Tensor]] | None = None) -> torch.Tensor:
        """``pooled[name]`` ``(B, D)`` (any values where absent), ``use[name]`` ``(B,)`` bool; for ``transformer``
        with ``tokens: sequence``, ``sequences[name]`` is ``(B, T, D)`` with its ``(B, T)`` mask."""
        vectors = [self.branch_vector(name, pooled[name], use[name]) for name in self.names]
        if self.kind == "concat":
            return torch.cat(vectors, dim=-1)
        if self.kind == "mlp":
            return self.net(torch.cat(vectors, dim=-1))
        return self._transformer(vectors, use, sequences or {})

    def _transformer(self, vectors: list[torch.Tensor], use: Mapping[str, torch.Tensor],
                     sequences: Mapping[str, tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
        batch = vectors[0].shape[0]
        tokens = [self.cls.expand(batch, 1, -1).to(vectors[0].dtype)]
        valid = [torch.ones(batch, 1, dtype=torch.bool, device=vectors[0].device)]
        for index, (name, vector) in enumerate(zip(self.names, vectors)):
            kind = self.type_embedding[index].to(vector.dtype)
            tokens.append((vector + kind).unsqueeze(1))
            valid.append(torch.ones_like(valid[0]))
            if self.tokens == "sequence" and name in sequences:
                sequence, mask = sequences[name]
                tokens.append(self.project[name](sequence) + kind)
                valid.append(mask & use[name].unsqueeze(-1))
        encoded = self.net(torch.cat(tokens, dim=1), src_key_padding_mask=~torch.cat(valid, dim=1))
        return self.norm(encoded[:, 0])


__all__ = ["KINDS", "TOKENS", "FusionFeatures", "FusionLayers"]

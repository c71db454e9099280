"""The ``mlp`` backbone: a residual MLP over standardised rows.

``export()`` returns the factory's options plus the fitted ``mean``/``std``, so the model directory rebuilds the
same preprocessing (``polygraft.load`` checks that it does).

Example:
    >>> from polygraft_tabular.backbone import create_mlp_backbone
    >>> backbone = create_mlp_backbone(in_features=3, hidden=8)
    >>> pre = backbone.preprocessor
    >>> pre.fit([{"x": [1.0, 2.0, 3.0]}, {"x": [3.0, 2.0, 1.0]}])
    >>> backbone(pre.collate([pre({"x": [1.0, 2.0, 3.0]})])).pooled.shape
    torch.Size([1, 8])
    >>> sorted(backbone.export(None))
    ['depth', 'dropout', 'hidden', 'in_features', 'mean', 'std']
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from torch import nn

from polygraft.errors import WeightsError
from polygraft.features import Features
from polygraft.interfaces import AttributionHooks, Backbone
from polygraft_tabular.preprocess import Standardize


class Block(nn.Module):
    """LayerNorm → Linear → GELU → Dropout, added to its input."""

    def __init__(self, hidden: int, dropout: float) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.LayerNorm(hidden), nn.Linear(hidden, hidden), nn.GELU(), nn.Dropout(dropout))

    def forward(self, h: Any) -> Any:
        return h + self.body(h)


class MLPBackbone(Backbone):
    """``in_features`` → ``hidden`` (stem), then ``depth`` residual blocks; pooled features of width ``hidden``."""

    modality = "tabular"

    def __init__(self, *, in_features: int, hidden: int, depth: int, dropout: float,
                 mean: Sequence[float] | None, std: Sequence[float] | None) -> None:
        super().__init__()
        self.feature_dim = hidden
        self.stem = nn.Linear(in_features, hidden)
        self.blocks = nn.ModuleList(Block(hidden, dropout) for _ in range(depth))
        self.norm = nn.LayerNorm(hidden)
        self._preprocessor = Standardize(in_features, mean, std)

    @property
    def preprocessor(self) -> Standardize:
        return self._preprocessor

    def forward(self, inputs: Mapping[str, Any]) -> Features:
        h = self.stem(inputs["x"])
        for block in self.blocks:
            h = block(h)
        return Features(pooled=self.norm(h))

    def attribution_hooks(self) -> AttributionHooks:
        """For ``polygraft explain``: attribute the standardised row, against the training mean (0 after
        standardising). Integrated Gradients and occlusion then explain each feature's share of a prediction."""
        return AttributionHooks(input="x", kind="vector", baseline=0.0)

    def layer_groups(self) -> list[nn.Module]:
        """Input → output; together they hold every parameter exactly once (freezing and LLRD use them)."""
        return [self.stem, *self.blocks, self.norm]

    def export(self, directory: Path | None) -> dict[str, Any]:
        """The factory's options plus the fitted statistics: everything a rebuild needs besides the weights."""
        return {**self.build_options, "mean": self.preprocessor.mean, "std": self.preprocessor.std}


def create_mlp_backbone(*, weights: str | None = None, in_features: int = 13, hidden: int = 64, depth: int = 2,
                        dropout: float = 0.1, mean: list[float] | None = None,
                        std: list[float] | None = None) -> MLPBackbone:
    """Factory registered as backbone ``mlp``.

    Args:
        weights: a safetensors file of an ``MLPBackbone`` (core resolves aliases and run directories itself).
        in_features: columns per row. hidden: width. depth: residual blocks. dropout: inside each block.
        mean, std: fitted statistics (set by a saved model; fitted on the training split otherwise).
    """
    backbone = MLPBackbone(in_features=in_features, hidden=hidden, depth=depth, dropout=dropout, mean=mean, std=std)
    backbone.build_options = {"in_features": in_features, "hidden": hidden, "depth": depth, "dropout": dropout}
    if weights is not None:
        from safetensors.torch import load_file

        try:
            backbone.load_state_dict(load_file(weights), strict=True)
        except (OSError, RuntimeError) as exc:
            raise WeightsError(f"{weights}: not the weights of an mlp backbone with these options: {exc}") from exc
    return backbone

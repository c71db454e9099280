"""A tiny MLP backbone over float vectors (or sequences of them) for tests, tutorials and conformance checks.

Example:
    >>> from polygraft.builtin.toy import create_toy_backbone
    >>> backbone = create_toy_backbone(in_features=4, hidden=8, depth=2)
    >>> len(backbone.layer_groups())
    3
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from polygraft.errors import DataError, WeightsError
from polygraft.features import Features
from polygraft.interfaces.backbone import Backbone
from polygraft.interfaces.preprocessor import Preprocessor


class VectorPreprocessor(Preprocessor):
    """``{"x": [f1, ...]}`` (one vector) or ``{"x": [[...], ...]}`` (a sequence) → float tensor."""

    input_key = "x"
    deterministic = True  # a vector is converted, never augmented

    def __init__(self, in_features: int) -> None:
        self.in_features = in_features

    def __call__(self, example: Mapping[str, Any]) -> dict[str, Any]:
        if self.input_key not in example:
            raise DataError(f"example has no {self.input_key!r} key (keys: {sorted(example)})",
                            path=example.get("_origin"))
        x = torch.as_tensor(example[self.input_key], dtype=torch.float32)
        if x.shape[-1] != self.in_features:
            raise DataError(f"expected {self.in_features} features, got {x.shape[-1]}", path=example.get("_origin"))
        return {"x": x}

    def collate(self, items: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        tensors = [item["x"] for item in items]
        if tensors[0].dim() == 1:
            return {"x": torch.stack(tensors)}
        lengths = torch.tensor([t.shape[0] for t in tensors])
        padded = nn.utils.rnn.pad_sequence(tensors, batch_first=True)
        mask = torch.arange(padded.shape[1])[None, :] < lengths[:, None]
        return {"x": padded, "mask": mask}

    def read_input(self, value: str) -> dict[str, Any]:
        """A JSON list from the command line: ``polygraft predict RUN "[0.1, 0.2, 0.3]"``."""
        import json

        try:
            return {"x": json.loads(value)}
        except json.JSONDecodeError as exc:
            raise DataError(f"expected a JSON list of {self.in_features} numbers, got {value!r}") from exc

    def describe(self) -> dict[str, Any]:
        return {"type": "vector", "in_features": self.in_features}


class ToyBackbone(Backbone):
    """Linear input layer then ``depth`` residual MLP blocks; pooled or sequence features."""

    modality = "any"

    def __init__(self, in_features: int = 8, hidden: int = 16, depth: int = 2) -> None:
        super().__init__()
        self.feature_dim = hidden
        self.stem = nn.Linear(in_features, hidden)
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.LayerNorm(hidden), nn.Linear(hidden, hidden), nn.GELU()) for _ in range(depth)
        )
        self._preprocessor = VectorPreprocessor(in_features)

    @property
    def preprocessor(self) -> VectorPreprocessor:
        return self._preprocessor

    def forward(self, inputs: Mapping[str, Any]) -> Features:
        h = self.stem(inputs["x"])
        for block in self.blocks:
            h = h + block(h)
        if h.dim() == 3:
            return Features(sequence=h, mask=inputs.get("mask"))
        return Features(pooled=h)

    def layer_groups(self) -> list[nn.Module]:
        return [self.stem, *self.blocks]

    def export_input_axes(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        """ONNX export: sequences of vectors vary in length; single vectors do not."""
        if inputs["x"].dim() == 3:
            return {"x": {1: "sequence"}, "mask": {1: "sequence"}}
        return {}


def create_toy_backbone(*, weights: str | None = None, in_features: int = 8, hidden: int = 16,
                        depth: int = 2) -> ToyBackbone:
    """Factory registered as backbone ``toy``; ``weights`` may be a safetensors file of a ToyBackbone."""
    for name, value, low, high in (("in_features", in_features, 1, 100_000), ("hidden", hidden, 1, 65_536),
                                   ("depth", depth, 0, 64)):
        if not low <= value <= high:
            from polygraft.errors import ConfigError

            raise ConfigError(f"backbone 'toy': {name} must be between {low} and {high:,}, got {value:,}")
    backbone = ToyBackbone(in_features, hidden, depth)
    backbone.build_options = {"in_features": in_features, "hidden": hidden, "depth": depth}
    if weights is not None:
        from safetensors.torch import load_file

        try:
            backbone.load_state_dict(load_file(weights), strict=True)
        except Exception as exc:  # not a safetensors file (SafetensorError), or tensors of another model
            reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
            raise WeightsError(f"{weights}: cannot load toy backbone weights ({type(exc).__name__}: {reason}); give "
                               "a safetensors file of a toy backbone with the same options") from None
    return backbone

"""Hook implementations of polygraft-tabular: specs only, no torch or scikit-learn at import time."""

from __future__ import annotations

from polygraft import hookimpl
from polygraft.specs import BackboneSpec, DatasetSpec, ModalitySpec

POLYGRAFT_PLUGIN_API = 1
"""The polygraft plugin API this plugin is written for (docs/contracts.md)."""

_PKG = "polygraft_tabular"


@hookimpl
def polygraft_register_modalities(register):
    # a new kind of input: rows of numbers, read from the raw example key "x"
    register(ModalitySpec(name="tabular", input_key="x",
                          description="Rows of numeric features: {'x': [f1, f2, ...]}."))


@hookimpl
def polygraft_register_backbones(register):
    register(BackboneSpec(
        name="mlp", factory=f"{_PKG}.backbone:create_mlp_backbone", modality="tabular", produces=("pooled",),
        description="Residual MLP over standardised features; the means and scales are fitted on the training "
                    "split and saved with the model.",
    ))


@hookimpl
def polygraft_register_datasets(register):
    register(DatasetSpec(
        name="wine", factory=f"{_PKG}.data:WineSource", modality="tabular", target="class",
        description="scikit-learn's 178 wines (13 measurements, 3 cultivars); seeded train/val/test splits.",
    ))

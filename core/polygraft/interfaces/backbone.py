"""The Backbone base class: modality inputs → :class:`~polygraft.features.Features`.

Subclasses set ``modality``, ``feature_dim`` (and ``map_channels``/``map_strides`` when they yield maps),
implement ``forward`` and ``layer_groups``, and expose a :class:`Preprocessor`.

Example:
    >>> import polygraft
    >>> backbone = polygraft.create_backbone("toy", in_features=4, hidden=8)
    >>> inputs = backbone.preprocessor.collate([backbone.preprocessor({"x": [0.0, 1.0, 2.0, 3.0]})])
    >>> backbone(inputs).pooled.shape
    torch.Size([1, 8])
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from polygraft.features import Features
from polygraft.interfaces.attribution import AttributionHooks
from polygraft.interfaces.preprocessor import Preprocessor


class Backbone(nn.Module):
    """Base class of every backbone."""

    modality: str = "any"
    feature_dim: int = 0
    map_channels: tuple[int, ...] = ()
    map_strides: tuple[int, ...] = ()
    #: mostly convolutions over image-like maps: ``trainer.channels_last: auto`` then uses the channels-last memory
    #: format (faster convolutions on CPU and GPU; nothing to gain for transformers). A class attribute, or set in
    #: ``__init__`` where it depends on the architecture (see :func:`polygraft.features.mostly_convolutional`).
    convolutional: bool = False
    #: the registered backbone name and the options that rebuild this architecture (filled by create_backbone)
    spec_name: str = ""
    build_options: dict[str, Any]

    def __init__(self) -> None:
        super().__init__()
        self.build_options = {}

    @property
    def preprocessor(self) -> Preprocessor:
        """The preprocessing this backbone expects (tokenizer, image transform, resampling...)."""
        raise NotImplementedError

    def forward(self, inputs: Mapping[str, Any]) -> Features:  # pragma: no cover - abstract
        raise NotImplementedError

    def layer_groups(self) -> list[nn.Module]:
        """Groups of layers ordered input → output (used by freezing, gradual unfreezing, LLRD)."""
        raise NotImplementedError

    def shard_units(self) -> list[nn.Module]:
        """The blocks ``trainer.distributed: fsdp`` shards one by one (``fully_shard`` per block): by default
        each layer group that is one of this backbone's own modules (a transformer layer, a timm stage), or the
        single module of a one-module group; containers of several modules (a stem of a convolution and a norm)
        stay with the rest of the model. A block must be a module whose ``forward`` the backbone calls: override
        this when a layer group's weights are read without calling it. ``[]``: the whole model is one unit."""
        try:
            groups = self.layer_groups()
        except NotImplementedError:
            return []
        own = {id(module) for module in self.modules()}
        units: list[nn.Module] = []
        for group in groups:
            if isinstance(group, nn.ModuleList | nn.ModuleDict):
                children = list(group.children())
                group = children[0] if len(children) == 1 else group
            if id(group) in own and group is not self and not isinstance(group, nn.ModuleList | nn.ModuleDict):
                units.append(group)
        return units

    def freeze(self, trainable_layers: int = 0) -> None:
        """Freeze everything except the last ``trainable_layers`` layer groups (0 = all frozen). Strategies call
        it (``{name: full, trainable_layers: N}``, ``linear-probe``, ``gradual-unfreeze``)."""
        groups = self.layer_groups()
        if not 0 <= trainable_layers <= len(groups):
            raise ValueError(f"trainable_layers must be in [0, {len(groups)}], got {trainable_layers}")
        self.requires_grad_(False)
        for group in groups[len(groups) - trainable_layers :]:
            group.requires_grad_(True)

    def unfreeze(self) -> None:
        self.requires_grad_(True)

    def export(self, directory: Path) -> dict[str, Any]:
        """The rebuild contract: write whatever the architecture and its preprocessing need besides the weights
        (an HF config, a tokenizer, fitted statistics...) into ``directory`` and return JSON-serialisable options
        that rebuild exactly this backbone through its factory with ``weights=None``. Paths inside ``directory``
        are stored relative to the model folder. The default returns ``build_options``: the keyword options the
        factory was called with (the factory sets them, or ``create_backbone`` fills them in). ``polygraft.load``
        checks that the rebuilt preprocessor describes itself as the saved one did.
        """
        return dict(self.build_options)

    def attribution_hooks(self) -> AttributionHooks | None:
        """What ``polygraft explain`` needs: the input tensor to attribute, its kind, and, where they exist, the
        embedding layer (text Integrated Gradients) and the last feature map (Grad-CAM). ``None`` (the default)
        still gets a model-agnostic occlusion explainer. See docs/hooks.md ("Explaining predictions")."""
        return None

    def feature_problems(self, features: Features, batch_size: int) -> list[str]:
        """What is wrong with ``features`` for a batch of ``batch_size`` examples, against the declared
        ``feature_dim``, ``map_channels`` and ``map_strides`` (empty when nothing is). The trainer checks the first
        training batch with it, the plugin kit every example it tries."""
        problems: list[str] = []
        try:
            pooled = features.pool()
        except ValueError as exc:
            return [str(exc)]
        if pooled.dim() != 2 or pooled.shape[1] != self.feature_dim:
            problems.append(f"pooled features must be (batch, feature_dim={self.feature_dim}), got "
                            f"{tuple(pooled.shape)}")
        elif pooled.shape[0] != batch_size:
            problems.append(f"pooled features have {pooled.shape[0]} rows for a batch of {batch_size} examples; keep "
                            "the batch dimension first and never reduce over it")
        seq, mask = features.sequence, features.mask
        if seq is not None and (seq.dim() != 3 or seq.shape[0] != batch_size or seq.shape[2] != self.feature_dim):
            problems.append(f"sequence features must be (batch={batch_size}, T, feature_dim={self.feature_dim}), got "
                            f"{tuple(seq.shape)}")
        elif seq is not None and mask is not None and (mask.dtype != torch.bool or mask.shape != seq.shape[:2]):
            problems.append("the sequence mask must be a bool (batch, T) tensor, True where the sequence is real")
        if features.maps is not None:
            maps = features.maps
            if not len(maps) == len(self.map_channels) == len(self.map_strides):
                problems.append(f"{len(maps)} maps but map_channels={self.map_channels} and map_strides="
                                f"{self.map_strides}; give one channel count and one stride per map")
            for index, (fmap, channels) in enumerate(zip(maps, self.map_channels)):
                if fmap.dim() != 4 or fmap.shape[0] != batch_size or fmap.shape[1] != channels:
                    problems.append(f"map {index} must be (batch={batch_size}, {channels}, H, W), got "
                                    f"{tuple(fmap.shape)}")
        return problems

    def export_input_axes(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        """ONNX export: the axes of each input tensor that vary besides the batch (axis 0), named, for a sample of
        collated ``inputs``: ``{"input_ids": {1: "sequence"}, "attention_mask": {1: "sequence"}}``. Tensors
        that share a name share a size. Nested inputs (a fusion backbone's ``{"text": {...}, "image": {...}}``)
        get a nested answer of the same shape, each branch asking its own backbone (prefix branch names to keep
        two branches' axes apart). Tensors left out have a dynamic batch and fixed other sizes; the default
        leaves every tensor out (fixed-size images, vectors). See docs/writing-plugins.md, "Export".
        """
        return {}

    def describe(self) -> dict[str, Any]:
        return {
            "backbone": self.spec_name or type(self).__name__,
            "modality": self.modality,
            "feature_dim": self.feature_dim,
            "layer_groups": len(self.layer_groups()),
            "preprocessing": self.preprocessor.describe(),
        }

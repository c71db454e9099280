"""What a backbone tells ``polygraft explain``: which input tensor to attribute and which layers to read.

A backbone returns :class:`AttributionHooks` from :meth:`Backbone.attribution_hooks`; the explainers in
``polygraft.explain`` read nothing else about it, so a third-party backbone is explained without any change to
core. A backbone that returns ``None`` (the default) still gets a model-agnostic occlusion explainer.

Example (the tabular plugin's MLP: standardised rows, where 0 is the training mean):
    >>> from polygraft.interfaces import AttributionHooks
    >>> hooks = AttributionHooks(input="x", kind="vector", baseline=0.0)
    >>> hooks.kind, hooks.input
    ('vector', 'x')
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch
    from torch import nn

INPUT_KINDS = ("tokens", "image", "spectrogram", "waveform", "vector", "grid")
"""What the attributed tensor holds (after the batch dimension), which decides how maps are drawn and merged:

* ``tokens``: ``(T,)`` integer ids; attributions are merged back to words through ``meta["word_ids"]``;
* ``image``: ``(C, H, W)`` pixels; maps are ``(H, W)``;
* ``spectrogram``: ``(C, F, T)`` or ``(F, T)``, frequency × time; maps are ``(F, T)``;
* ``waveform``: ``(T,)`` samples; maps are summed into frames of ``frame_size`` samples;
* ``vector``: ``(D,)`` features; ``grid``: any other ``(A, B)`` array.
"""


@dataclass
class AttributionHooks:
    """The explainers' view of a backbone.

    Attributes:
        input: key of the attributed tensor in the backbone's ``inputs`` (``pixel_values``, ``input_ids``...);
            a dotted path (``image.pixel_values``) reaches into nested inputs.
        kind: one of :data:`INPUT_KINDS`.
        embedding: for ``tokens``, the layer whose output Integrated Gradients attributes (the word embeddings:
            captum's ``LayerIntegratedGradients``); without it integer inputs get occlusion only.
        feature_layer: the module whose output is the last spatial feature map ``(B, C, h, w)`` (Grad-CAM's
            target layer); ``None`` = Grad-CAM does not apply.
        reshape_transform: turns ``feature_layer``'s output into ``(B, C, h, w)`` when it is not one already
            (a ViT's ``(B, prefix + h*w, C)`` tokens).
        baseline: the input that means "nothing here": a number, a tensor broadcastable to one example's input
            (per-channel silence ``(C, 1, 1)``), or a callable from the input tensor to one of the same shape
            (a clip's own quietest value). For ``tokens``, the id that replaces words (the padding id); special
            tokens (``word_ids == -1``) are kept. Default 0.
        frame_size: for ``waveform``, samples per attribution frame (the encoder's hop, 320 for wav2vec2).
        seconds_per_step: seconds per step along the input's last axis (time), for the drawn axes.
    """

    input: str
    kind: str
    embedding: nn.Module | None = None
    feature_layer: nn.Module | None = None
    reshape_transform: Callable[[torch.Tensor], torch.Tensor] | None = None
    baseline: float | int | torch.Tensor | Callable[[torch.Tensor], torch.Tensor] | None = None
    frame_size: int | None = None
    seconds_per_step: float | None = None

    def __post_init__(self) -> None:
        from polygraft.errors import PluginError

        if self.kind not in INPUT_KINDS:
            raise PluginError(f"AttributionHooks.kind must be one of {INPUT_KINDS}, got {self.kind!r}")
        if not self.input:
            raise PluginError("AttributionHooks.input must name the attributed tensor of the backbone's inputs")
        if self.frame_size is not None and int(self.frame_size) < 1:
            raise PluginError(f"AttributionHooks.frame_size must be a positive number of samples, got {self.frame_size}")

    def describe(self) -> dict[str, Any]:
        """JSON-friendly summary (what ``polygraft explain --json`` reports about the backbone)."""
        return {"input": self.input, "kind": self.kind, "embedding": type(self.embedding).__name__
                if self.embedding is not None else None,
                "feature_layer": type(self.feature_layer).__name__ if self.feature_layer is not None else None,
                "frame_size": self.frame_size, "seconds_per_step": self.seconds_per_step}

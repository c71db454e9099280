"""Grad-CAM (Selvaraju et al. 2017) with pytorch-grad-cam, on the feature map the backbone declares.

The backbone's ``feature_layer`` is the target layer (the last convolutional map of a CNN; for ViT-style models
the tokens before the last attention, turned into a map by its ``reshape_transform``). The score is the target's
value (a class logit, a detected box's score). pytorch-grad-cam resizes the map to the input and
scales it to [0, 1]; for detection each predicted box gets its own map.

Example:
    >>> from polygraft.explain.registry import get_explainer
    >>> get_explainer("grad-cam").name
    'gradcam'
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from polygraft.explain.registry import Explainer, RawAttribution, Settings, register_explainer

if TYPE_CHECKING:
    from polygraft.explain.subject import Subject
    from polygraft.explain.tasks import Target


class _Outputs(nn.Module):
    """The task as the ``model`` pytorch-grad-cam calls: attributed tensor in, the task's outputs out."""

    def __init__(self, subject: Subject) -> None:
        super().__init__()
        self.task = subject.task
        self.subject = subject

    def forward(self, x: torch.Tensor) -> Any:
        return self.subject.outputs(x)


class _RowTarget:
    """pytorch-grad-cam calls a target on one example's output; ours score a batch."""

    def __init__(self, target: Target) -> None:
        self.score = target.value

    def __call__(self, row: Any) -> torch.Tensor:
        return self.score(row.unsqueeze(0) if isinstance(row, torch.Tensor) else [row])[0]


class GradCAM(Explainer):
    name = "gradcam"
    aliases = ("grad-cam",)
    requires = (("pytorch_grad_cam", "grad-cam==1.5.7"),)
    summary = "pytorch-grad-cam GradCAM on the backbone's last feature map (one map per box for detection)"

    def applies(self, subject: Subject) -> str | None:
        if subject.hooks.feature_layer is None:
            return "its backbone declares no feature map (Grad-CAM needs a convolutional or ViT-style backbone)"
        if subject.hooks.kind not in ("image", "spectrogram") or subject.x.dim() != 4:
            return f"Grad-CAM draws maps over (channels, height, width) inputs, not {subject.hooks.kind}"
        return None

    def attribute(self, subject: Subject, target: Target, settings: Settings) -> RawAttribution:
        from pytorch_grad_cam import GradCAM as CAM

        model = _Outputs(subject)
        cam = CAM(model=model, target_layers=[subject.hooks.feature_layer],
                  reshape_transform=subject.hooks.reshape_transform)
        cam.compute_input_gradient = True  # activations keep a graph even when the backbone is frozen
        try:
            with torch.enable_grad():
                maps = cam(input_tensor=subject.x.detach(), targets=[_RowTarget(target)])
        finally:
            cam.activations_and_grads.release()
            subject.task.zero_grad(set_to_none=True)
        values = torch.from_numpy(maps[0].copy())
        notes = [] if float(values.max()) > 0 else ["the class-activation map is zero everywhere: no region of "
                                                     "the last feature map raises this score"]
        return RawAttribution(values=values, unit_level=True, notes=notes)


register_explainer(GradCAM())

"""What ``polygraft explain`` needs from a timm backbone: pixels, a black baseline, and the last feature map.

The Grad-CAM layer is the module that yields the backbone's last spatial map, found once by a probe forward
pass (the last module whose output has the map's shape: ``layer4`` of a ResNet, ``bn2`` of an EfficientNet, the
last stage of ``features_only`` models). ViT-style models (``blocks`` + prefix tokens) use the input of the
last attention (``blocks[-1].norm1``, pytorch-grad-cam's advice for class-token pooling; the last block for
average pooling) and a reshape transform from ``(B, prefix + h*w, C)`` tokens to ``(B, C, h, w)`` maps.

Example:
    >>> import polygraft
    >>> backbone = polygraft.create_backbone("timm", model_name="test_resnet", image_size=32).eval()
    >>> hooks = backbone.attribution_hooks()
    >>> hooks.kind, type(hooks.feature_layer).__name__, tuple(hooks.baseline.shape)
    ('image', 'Sequential', (3, 1, 1))
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from polygraft.interfaces import AttributionHooks

if TYPE_CHECKING:
    from polygraft_vision.backbone import TimmBackbone


class TokensToMap:
    """``(B, prefix + h*w, C)`` ViT tokens → ``(B, C, h, w)``, the prefix (class, register) tokens dropped."""

    def __init__(self, prefix: int, grid: tuple[int, int]) -> None:
        self.prefix, self.grid = int(prefix), (int(grid[0]), int(grid[1]))

    def __call__(self, tokens: torch.Tensor) -> torch.Tensor:
        patches = tokens[:, self.prefix:, :]
        return patches.reshape(patches.shape[0], *self.grid, patches.shape[-1]).permute(0, 3, 1, 2)


def _vit_parts(model: nn.Module) -> Any:
    inner = getattr(model, "model", model)  # timm's FeatureGetterNet wraps ViTs for features_only
    blocks = getattr(inner, "blocks", None)
    if isinstance(blocks, nn.Sequential | nn.ModuleList) and hasattr(inner, "num_prefix_tokens") and hasattr(
            getattr(inner, "patch_embed", None), "grid_size"):
        return inner
    return None


def _probed_layer(backbone: TimmBackbone) -> nn.Module | None:
    """The last module (in the order they finish) whose output has the shape of the backbone's last map, among
    those that run before the pooling head (``forward_features``, or the ``features_only`` stages)."""
    finished: list[tuple[nn.Module, tuple[int, ...]]] = []

    def record(module: nn.Module, _inputs: Any, output: Any) -> None:
        if isinstance(output, torch.Tensor) and output.dim() == 4:
            finished.append((module, tuple(output.shape)))

    handles = [m.register_forward_hook(record) for m in backbone.model.modules() if m is not backbone.model]
    was_training = backbone.training
    backbone.eval()
    try:
        with torch.no_grad():
            pixels = torch.zeros(1, *backbone.preprocessor.input_size)
            model: Any = backbone.model
            last = model(pixels)[-1] if backbone.features == "maps" else model.forward_features(pixels)
    finally:
        for handle in handles:
            handle.remove()
        backbone.train(was_training)
    if not isinstance(last, torch.Tensor) or last.dim() != 4:
        return None
    wanted = tuple(last.shape)
    matching = [module for module, shape in finished if shape == wanted]
    return matching[-1] if matching else None


def feature_layer(backbone: TimmBackbone) -> tuple[nn.Module | None, Callable[[torch.Tensor], torch.Tensor] | None]:
    """Grad-CAM's target layer and reshape transform."""
    vit = _vit_parts(backbone.model)
    if vit is not None:
        pooled_by_token = getattr(vit, "global_pool", "token") == "token" and backbone.features == "pooled"
        last = vit.blocks[-1]
        layer = last.norm1 if pooled_by_token and hasattr(last, "norm1") else last
        return layer, TokensToMap(vit.num_prefix_tokens, tuple(vit.patch_embed.grid_size))
    return _probed_layer(backbone), None


def timm_attribution_hooks(backbone: TimmBackbone) -> AttributionHooks:
    """Pixels attributed against a black image (0 before normalisation), Grad-CAM on the last feature map."""
    pre = backbone.preprocessor
    black = torch.tensor([-m / s for m, s in zip(pre.mean, pre.std)]).view(-1, 1, 1)
    layer, reshape = feature_layer(backbone)
    return AttributionHooks(input="pixel_values", kind="image", feature_layer=layer, reshape_transform=reshape,
                            baseline=black)

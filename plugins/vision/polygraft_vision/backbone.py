"""The ``timm`` backbone: any timm model as pooled features, or multi-scale maps for dense tasks.

Example:
    >>> import polygraft
    >>> from PIL import Image
    >>> backbone = polygraft.create_backbone("timm", model_name="test_resnet", image_size=32).eval()
    >>> pre = backbone.preprocessor
    >>> features = backbone(pre.collate([pre({"image": Image.new("RGB", (40, 40))})]))
    >>> features.pooled.shape[1] == backbone.feature_dim
    True
    >>> maps = polygraft.create_backbone("timm", model_name="test_resnet", features="maps", image_size=32)
    >>> maps.map_strides
    (2, 4, 8, 16, 32)
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import timm
import torch
from torch import nn

from polygraft.assets import network_allowed, network_hint
from polygraft.errors import ConfigError, WeightsError
from polygraft.features import Features, mostly_convolutional
from polygraft.interfaces import AttributionHooks
from polygraft.interfaces.backbone import Backbone
from polygraft.options import closest
from polygraft_vision.images import DEFAULT_MAX_PIXELS
from polygraft_vision.preprocess import ImagePreprocessor, preprocessor_from_model
from polygraft_vision.weights import check_matches, positional_remap, read_state_dict

FEATURE_MODES = ("pooled", "maps")


class TimmBackbone(Backbone):
    """A timm model. ``features="pooled"`` yields pooled vectors (plus the last feature map when the model
    is convolutional); ``features="maps"`` wraps the model with timm's ``features_only`` and yields every
    selected stage's map, highest resolution first.
    """

    modality = "vision"

    def __init__(self, model: nn.Module, *, features: str, preprocessor: ImagePreprocessor, model_name: str,
                 num_classes: int = 0) -> None:
        super().__init__()
        self.model = model
        self.features = features
        self.model_name = model_name
        self.num_classes = num_classes
        self._preprocessor = preprocessor
        self.convolutional = mostly_convolutional(model)  # CNNs train faster channels-last; ViTs gain nothing
        info = model.feature_info  # type: ignore[union-attr]
        if features == "maps":
            self.map_channels = tuple(int(c) for c in info.channels())
            self.map_strides = tuple(int(r) for r in info.reduction())
            self.feature_dim = self.map_channels[-1]
        else:
            self.feature_dim = int(model.num_features)  # type: ignore[arg-type]
            last = info[-1] if isinstance(info, list) and info else None
            if last is not None and "reduction" in last:
                self.map_channels = (int(model.num_features),)  # type: ignore[arg-type]
                self.map_strides = (int(last["reduction"]),)

    @property
    def preprocessor(self) -> ImagePreprocessor:
        return self._preprocessor

    def forward(self, inputs: Mapping[str, Any]) -> Features:
        pixels = inputs["pixel_values"]
        if self.features == "maps":
            maps = list(self.model(pixels))
            return Features(pooled=maps[-1].mean(dim=(-2, -1)), maps=maps, strides=list(self.map_strides))
        hidden = self.model.forward_features(pixels)  # type: ignore[operator]
        pooled = self.model.forward_head(hidden, pre_logits=True)  # type: ignore[operator]
        if hidden.dim() == 4 and self.map_channels and hidden.shape[1] == self.map_channels[0]:
            return Features(pooled=pooled, maps=[hidden], strides=list(self.map_strides))
        return Features(pooled=pooled)

    def attribution_hooks(self) -> AttributionHooks:
        """Pixels against a black image; Grad-CAM on the last feature map (see ``polygraft_vision.attribution``)."""
        from polygraft_vision.attribution import timm_attribution_hooks

        return timm_attribution_hooks(self)

    def classify(self, inputs: Mapping[str, Any]) -> torch.Tensor:
        """Logits of the timm classifier (needs ``num_classes > 0``, e.g. the ImageNet head)."""
        if self.features == "maps" or not self.num_classes:
            raise ConfigError("classify() needs the model's own head: build it with num_classes=N (features='pooled')")
        return self.model(inputs["pixel_values"])

    def layer_groups(self) -> list[nn.Module]:
        """Stem, then one group per stage (timm's ``group_matcher``), then whatever sits after the stages."""
        matcher = getattr(self.model, "group_matcher", None)
        if matcher is None:  # features_only wrappers keep the original module names
            with torch.device("meta"):
                matcher = timm.create_model(self.model_name, num_classes=0).group_matcher
        grouped = timm.models.group_modules(self.model, matcher(coarse=True))
        groups: list[nn.Module] = []
        covered: set[int] = set()
        for _, names in sorted(grouped.items()):
            modules = [self.model.get_submodule(name) for name in names]
            covered.update(id(p) for m in modules for p in m.parameters())
            groups.append(nn.ModuleList(modules))
        rest = [m for m in self.model.modules()
                if any(id(p) not in covered for p in m.parameters(recurse=False))]
        if rest:
            groups.append(nn.ModuleList(rest))
        if len(groups) < 2:
            groups = [child for child in self.model.children() if any(True for _ in child.parameters())]
        return groups

    def shard_units(self) -> list[nn.Module]:
        """The stages ``trainer.distributed: fsdp`` shards one by one: for each layer group, the module that holds
        exactly its parameters (the stage, e.g. ``layer2`` or ``blocks.3``), found at the group's common name
        prefix; a group no single module holds (the stem of separate convolutions and norms) stays with the rest.

        Example:
            >>> import polygraft
            >>> backbone = polygraft.create_backbone("timm", model_name="test_resnet")
            >>> names = {id(m): name for name, m in backbone.model.named_modules()}
            >>> [names[id(unit)] for unit in backbone.shard_units()]
            ['layer1.0', 'layer2.0', 'layer3.0', 'layer4.0']
        """
        names = {id(m): name for name, m in self.model.named_modules()}
        units: list[nn.Module] = []
        for group in self.layer_groups():
            members = list(group.children()) if isinstance(group, nn.ModuleList) else [group]
            paths = [names[id(m)].split(".") for m in members if id(m) in names]
            if not paths or len(paths) != len(members):
                continue
            common: list[str] = []
            for parts in zip(*paths):
                if len(set(parts)) > 1:
                    break
                common.append(parts[0])
            if not common:
                continue
            unit = self.model.get_submodule(".".join(common))
            held = {id(p) for m in members for p in m.parameters()}
            if unit is not self.model and {id(p) for p in unit.parameters()} == held:
                units.append(unit)
        return units



def _hub_model(weights: str, model_name: str | None, **kwargs: Any) -> nn.Module:
    if not network_allowed():
        raise WeightsError(
            f"weights {weights!r} are not a local file, a polygraft run or a registered alias. Pass a local state "
            f"dict (safetensors / torch file) or an alias such as 'efficientnet-lite0-imagenet'. {network_hint()}"
        )
    name = weights if weights.startswith("hf-hub:") else f"hf-hub:{weights}" if "/" in weights else model_name
    return timm.create_model(name, pretrained=True, **kwargs)


def _reference_state(model_name: str, **kwargs: Any) -> dict[str, torch.Tensor]:
    """Names and shapes of the full model (meta tensors: no memory, no init cost)."""
    try:
        with torch.device("meta"):
            return timm.create_model(model_name, **kwargs).state_dict()
    except Exception:  # a model whose init needs real tensors
        return timm.create_model(model_name, **kwargs).state_dict()


def _model_from_local_weights(model_name: str, weights: str, *, remap: str | None, **kwargs: Any) -> nn.Module:
    """A timm model filled strictly from a local state dict (renamed by position first when ``remap``)."""
    state = read_state_dict(weights)
    found = timm.models.get_pretrained_cfg(model_name)
    pretrained_cfg = found.to_dict() if found is not None else {}
    classifier = pretrained_cfg.get("classifier") or ()
    classifier = (classifier,) if isinstance(classifier, str) else tuple(classifier)
    if remap == "positional":
        reference = _reference_state(model_name, num_classes=pretrained_cfg.get("num_classes", 1000))
        state = positional_remap(state, reference, where=str(weights))
    elif remap is not None:
        raise ConfigError(f"timm backbone: unknown remap {remap!r} (known: 'positional')")
    head = [state[f"{c}.weight"] for c in classifier if f"{c}.weight" in state]
    source_classes = int(head[0].shape[0]) if head else 0
    check_matches(state, _reference_state(model_name, num_classes=source_classes), where=str(weights))
    builder_log = logging.getLogger("timm.models._builder")
    level = builder_log.level
    builder_log.setLevel(logging.ERROR)  # head keys a headless / features_only model drops are expected here
    try:
        return timm.create_model(model_name, pretrained=True, **kwargs, pretrained_cfg_overlay={
            "state_dict": state, "num_classes": source_classes, "source": ""})
    finally:
        builder_log.setLevel(level)


IMAGE_SIZES = (8, 4096)
"""The smallest and largest input side a timm backbone accepts (4096² RGB floats: 200 MB per image)."""


def check_image_size(image_size: int | Sequence[int] | None) -> None:
    """Refuse input sizes that cannot work before any image is resized to them."""
    if image_size is None:
        return
    sides = [image_size] * 2 if isinstance(image_size, int) else list(image_size)
    low, high = IMAGE_SIZES
    if len(sides) != 2 or not all(isinstance(side, int) and low <= side <= high for side in sides):
        megabytes = 3 * 4 * max(1, sides[0]) * max(1, sides[-1]) / 2**20 if sides and all(
            isinstance(side, int) for side in sides) else 0
        size = f" ({megabytes:,.0f} MB per image as float32)" if megabytes > 200 else ""
        raise ConfigError(f"timm backbone: image_size must be one side or (height, width), each between {low} and "
                          f"{high} pixels, got {image_size!r}{size}")


def create_timm_backbone(*, weights: str | None = None, model_name: str | None = None, features: str = "pooled",
                         out_indices: Sequence[int] | None = None, num_classes: int = 0,
                         image_size: int | Sequence[int] | None = None, mean: Sequence[float] | None = None,
                         std: Sequence[float] | None = None, interpolation: str | None = None,
                         crop_pct: float | None = None, augment: Mapping[str, Any] | None = None,
                         max_pixels: int = DEFAULT_MAX_PIXELS, remap: str | None = None,
                         model_kwargs: Mapping[str, Any] | None = None) -> TimmBackbone:
    """Factory registered as backbone ``timm``.

    Args:
        weights: local state dict file or directory (safetensors or weights-only torch), resolved alias path,
            or a hub id (``timm/resnet18.a1_in1k``; tried only with ``POLYGRAFT_ALLOW_NETWORK=1``).
        model_name: any ``timm.list_models()`` name.
        features: ``pooled`` or ``maps`` (timm ``features_only``; ``out_indices`` picks the stages).
        num_classes: keep timm's classifier with this many outputs (0 = headless; 1000 + ImageNet weights =
            the ImageNet classifier, see :meth:`TimmBackbone.classify`).
        image_size, mean, std, interpolation, crop_pct: override timm's resolved data config.
        remap: ``positional`` renames a foreign checkpoint's tensors by position (set by aliases).
        model_kwargs: extra ``timm.create_model`` arguments (``drop_path_rate``...).
    """
    if not model_name:
        raise ConfigError("backbone 'timm' needs model_name=... (any timm model, e.g. resnet18, efficientnet_b0)")
    check_image_size(image_size)
    if features not in FEATURE_MODES:
        raise ConfigError(f"timm backbone: features must be one of {FEATURE_MODES}, got {features!r}")
    architecture = timm.models.split_model_name_tag(model_name)[0]
    if not timm.is_model(architecture):
        near = closest(architecture, timm.list_models(), n=5) or timm.list_models(f"*{architecture[:6]}*")[:5]
        raise ConfigError(f"timm has no model {model_name!r}; did you mean {', '.join(near) or 'none found'}? "
                          "(`timm.list_models()` lists them all)")
    kwargs: dict[str, Any] = dict(model_kwargs or {})
    if features == "maps":
        kwargs["features_only"] = True
        if out_indices is not None:
            kwargs["out_indices"] = tuple(out_indices)
    else:
        kwargs["num_classes"] = num_classes
    if weights is None:
        model = timm.create_model(model_name, **kwargs)
    elif Path(weights).exists():
        model = _model_from_local_weights(model_name, weights, remap=remap, **kwargs)
    else:
        model = _hub_model(str(weights), model_name, **kwargs)
    preprocessor = preprocessor_from_model(model, image_size=image_size, mean=mean, std=std,
                                           interpolation=interpolation, crop_pct=crop_pct, augment=augment,
                                           max_pixels=max_pixels)
    backbone = TimmBackbone(model, features=features, preprocessor=preprocessor, model_name=model_name,
                            num_classes=num_classes if features == "pooled" else 0)
    options = {"model_name": model_name, "features": features, "out_indices": list(out_indices or []) or None,
               "num_classes": num_classes or None, "image_size": image_size, "mean": mean, "std": std,
               "interpolation": interpolation, "crop_pct": crop_pct, "augment": dict(augment) if augment else None,
               "model_kwargs": dict(model_kwargs) if model_kwargs else None}
    if max_pixels != DEFAULT_MAX_PIXELS:
        options["max_pixels"] = max_pixels
    backbone.build_options = {k: list(v) if isinstance(v, tuple) else v for k, v in options.items() if v is not None}
    return backbone

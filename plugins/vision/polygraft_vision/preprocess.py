"""The image preprocessor: timm's data config (size, mean, std, interpolation, crop) as a picklable object.

Three flavours share one config: ``eval`` (timm's eval transform: resize + centre crop), ``train`` (timm's
training transform factory: random resized crop, flip, colour jitter, optional RandAugment) and ``dense``
(resize the whole image to exactly ``H x W``, no crop, so boxes scale linearly; used by detection).

Example:
    >>> from PIL import Image
    >>> from polygraft_vision.preprocess import ImagePreprocessor
    >>> pre = ImagePreprocessor(input_size=(3, 32, 32), mean=(0.5,) * 3, std=(0.5,) * 3)
    >>> pre.collate([pre({"image": Image.new("RGB", (50, 40))})])["pixel_values"].shape
    torch.Size([1, 3, 32, 32])
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from polygraft.errors import ConfigError, DataError
from polygraft.interfaces.preprocessor import Preprocessor
from polygraft_vision.images import DEFAULT_MAX_PIXELS, as_rgb_image

MODES = ("eval", "train", "dense")


class ImagePreprocessor(Preprocessor):
    """``{"image": PIL.Image | path | array}`` → ``{"pixel_values": (3, H, W) float tensor}``.

    Args:
        input_size: ``(3, H, W)`` after preprocessing.
        mean, std: normalisation per channel.
        interpolation: ``bilinear`` / ``bicubic`` / ...
        crop_pct: eval-time centre crop fraction (1.0 = no crop, just resize).
        mode: ``eval``, ``train`` or ``dense`` (see module docstring).
        augment: training options for ``timm.data.create_transform`` (``scale``, ``hflip``, ``color_jitter``,
            ``auto_augment`` such as ``"rand-m9-mstd0.5"`` for RandAugment).
    """

    input_key = "image"

    def __init__(self, *, input_size: Sequence[int] = (3, 224, 224), mean: Sequence[float] = (0.485, 0.456, 0.406),
                 std: Sequence[float] = (0.229, 0.224, 0.225), interpolation: str = "bicubic",
                 crop_pct: float = 0.875, crop_mode: str = "center", mode: str = "eval",
                 augment: Mapping[str, Any] | None = None, max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
        if mode not in MODES:
            raise ConfigError(f"image preprocessing mode must be one of {MODES}, got {mode!r}")
        self.input_size = tuple(int(v) for v in input_size)
        self.mean = tuple(float(v) for v in mean)
        self.std = tuple(float(v) for v in std)
        self.interpolation = str(interpolation)
        self.crop_pct = float(crop_pct)
        self.crop_mode = str(crop_mode)
        self.mode = mode
        self.augment = dict(augment or {})
        self.max_pixels = int(max_pixels)
        self._transform: Any = None

    # -- variants -------------------------------------------------------------------------------------------
    def with_mode(self, mode: str, **augment: Any) -> ImagePreprocessor:
        """A copy in another mode (``train`` takes timm training options)."""
        other = copy.copy(self)
        other.mode = mode
        other.augment = {**self.augment, **augment}
        other._transform = None
        if mode not in MODES:
            raise ConfigError(f"image preprocessing mode must be one of {MODES}, got {mode!r}")
        return other

    def for_training(self, **augment: Any) -> ImagePreprocessor:
        """Training-time augmentation through timm's transform factory."""
        return self.with_mode("train", **augment)

    def for_dense_prediction(self) -> ImagePreprocessor:
        """Resize the whole image to the input size (no crop): coordinates scale linearly."""
        return self.with_mode("dense")

    @property
    def image_size(self) -> tuple[int, int]:
        return self.input_size[1], self.input_size[2]

    @property
    def deterministic(self) -> bool:  # type: ignore[override]
        """``eval`` and ``dense`` always give the same tensor for the same image; ``train`` augments at random."""
        return self.mode != "train"

    def fingerprint(self) -> str:
        """:meth:`describe` plus the versions of the libraries that resize and normalise (timm, torchvision, Pillow)."""
        import json
        from importlib.metadata import version

        libraries = {name: version(name) for name in ("timm", "torchvision", "pillow")}
        return json.dumps({**self.describe(), "libraries": libraries}, sort_keys=True)

    # -- the transform ----------------------------------------------------------------------------------------
    def _build(self) -> Any:
        from timm.data import create_transform
        from torchvision import transforms

        if self.mode == "dense":
            from timm.data.transforms import str_to_interp_mode

            return transforms.Compose([
                transforms.Resize(self.image_size, interpolation=str_to_interp_mode(self.interpolation)),
                transforms.ToTensor(),
                transforms.Normalize(self.mean, self.std),
            ])
        if self.mode == "train":
            options = {"hflip": 0.5, "color_jitter": 0.4, **self.augment}
            return create_transform(self.input_size, is_training=True, interpolation=self.interpolation,  # type: ignore[arg-type]
                                    mean=self.mean, std=self.std, **options)
        return create_transform(self.input_size, is_training=False, interpolation=self.interpolation,  # type: ignore[arg-type]
                                mean=self.mean, std=self.std, crop_pct=self.crop_pct, crop_mode=self.crop_mode)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_transform"] = None  # rebuilt lazily in each worker
        return state

    def __call__(self, example: Mapping[str, Any]) -> dict[str, Any]:
        if self.input_key not in example:
            raise DataError(f"example has no 'image' key (keys: {sorted(example)})", path=example.get("_origin"))
        image = as_rgb_image(example[self.input_key], origin=example.get("_origin"), max_pixels=self.max_pixels)
        if self._transform is None:
            self._transform = self._build()
        return {"pixel_values": self._transform(image)}

    def read_input(self, value: str) -> dict[str, Any]:
        """A raw example from a command-line value: the image file at ``value`` (checked, RGB)."""
        from polygraft_vision.images import open_image

        return {self.input_key: open_image(value, max_pixels=self.max_pixels), "_origin": value}

    def extent(self, example: Mapping[str, Any]) -> tuple[int, int]:
        """(width, height) of the raw image, before resizing (detection scales boxes by it)."""
        value = example.get(self.input_key)
        if isinstance(value, str | Path):
            return as_rgb_image(value, origin=example.get("_origin"), max_pixels=self.max_pixels).size
        if hasattr(value, "size") and isinstance(value.size, tuple):
            return int(value.size[0]), int(value.size[1])
        return as_rgb_image(value, origin=example.get("_origin"), max_pixels=self.max_pixels).size

    def collate(self, items: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        return {"pixel_values": torch.stack([item["pixel_values"] for item in items])}

    def describe(self) -> dict[str, Any]:
        return {
            "type": "timm-image", "mode": self.mode, "input_size": list(self.input_size), "mean": list(self.mean),
            "std": list(self.std), "interpolation": self.interpolation, "crop_pct": self.crop_pct,
            "crop_mode": self.crop_mode, "augment": self.augment, "max_pixels": self.max_pixels,
        }


def preprocessor_from_model(model: Any, *, image_size: int | Sequence[int] | None = None,
                            mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
                            interpolation: str | None = None, crop_pct: float | None = None,
                            augment: Mapping[str, Any] | None = None,
                            max_pixels: int = DEFAULT_MAX_PIXELS) -> ImagePreprocessor:
    """Resolve timm's data config for ``model`` (``timm.data.resolve_data_config``) with overrides."""
    from timm.data import resolve_data_config

    args: dict[str, Any] = {}
    if image_size is not None:
        size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
        args["input_size"] = (3, int(size[0]), int(size[1]))
    for key, value in (("mean", mean), ("std", std), ("interpolation", interpolation), ("crop_pct", crop_pct)):
        if value is not None:
            args[key] = tuple(value) if isinstance(value, list | tuple) else value
    config = resolve_data_config(args=args, model=model)
    return ImagePreprocessor(
        input_size=config["input_size"], mean=config["mean"], std=config["std"],
        interpolation=config["interpolation"], crop_pct=config["crop_pct"],
        crop_mode=config.get("crop_mode", "center"), augment=augment, max_pixels=max_pixels,
    )

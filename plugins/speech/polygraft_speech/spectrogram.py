"""The ``spectrogram`` backbone: audio → log-mel image → any registered image backbone (ImageNet CNNs that hear).

A clip becomes a log-mel spectrogram (torchaudio ``MelSpectrogram``, power → dB) drawn as a grayscale image:
decibels referenced to the clip's own loudest bin and clipped ``top_db`` below it, mapped linearly to [0, 1]
(silence = 0, the loudest bin = 1; librosa's ``power_to_db(ref=np.max, top_db=80)`` rendering). The image keeps
its natural size, ``n_mels`` rows × one column per hop (10 ms by default), so time keeps one scale across clips of
different lengths and compute follows the clip's duration. Its channels are the image backbone's (three for
ImageNet models): the gray image repeated (``channels="repeat"``, what the pretrained first layer expects of a
gray photo) or log-mel, delta and delta-delta (``channels="deltas"``). Each channel is then normalised with the
image backbone's own ``mean``/``std`` (read from its preprocessor's ``describe()``), so the pixels are what that
backbone was trained on; its own image preprocessor (resize, crop) is bypassed.

The image backbone is built by name through the caller's plugin catalog (``polygraft.create_backbone``), so this
module imports no vision plugin and an isolated catalog (tests, the plugin kit) reaches the image backbone too: ``image_backbone`` names it, ``image_weights`` gives its weights (an alias such as
``efficientnet-lite0-imagenet``, a local file or a polygraft run), and every other option goes to it unchanged.
Features, layer groups and freezing are the image backbone's; the front end has no parameters.

Example:
    >>> import numpy as np, polygraft
    >>> backbone = polygraft.create_backbone("spectrogram", image_backbone="timm", model_name="test_resnet",
    ...                                      n_mels=32).eval()
    >>> pre = backbone.preprocessor
    >>> batch = pre.collate([pre({"audio": np.zeros(8000, np.float32), "sample_rate": 16000})])
    >>> batch["pixel_values"].shape  # (batch, channels, mel bins, frames): 0.5 s = 51 frames
    torch.Size([1, 3, 32, 51])
    >>> backbone(batch).pooled.shape[1] == backbone.feature_dim
    True
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from polygraft.errors import ConfigError, IncompatibleComponentsError
from polygraft.features import Features
from polygraft.interfaces import AttributionHooks, Backbone
from polygraft_speech.frontend import AudioFrontEnd
from polygraft_speech.mel import spec_augment

CHANNEL_MODES = ("repeat", "deltas")
AMIN = 1e-10  # the power floor before taking decibels (librosa's amin)


class SpectrogramPreprocessor(AudioFrontEnd):
    """Audio → ``pixel_values`` ``(channels, n_mels, frames)`` normalised like the image backbone's inputs.

    Args:
        sample_rate: the rate clips are resampled to.
        n_mels, n_fft, win_length, hop_length, f_min, f_max: the mel spectrogram (torchaudio's meanings).
        top_db: the dynamic range kept below the clip's loudest bin (the image's black level).
        channels: ``repeat`` (gray image in every channel) or ``deltas`` (log-mel, delta, delta-delta; 3 channels).
        image_channels: how many channels the image backbone reads.
        mean, std: the image backbone's per-channel normalisation.
        min_frames: narrower images are padded with silence to this width (deep CNNs downsample 32x).
        max_seconds: longer clips are cut (counted: ``collate_meta()["truncated"]``).
        augment: SpecAugment settings (set by :meth:`for_training`).
    """

    limit_name = "spectrogram max_seconds"

    def __init__(self, *, sample_rate: int = 16000, n_mels: int = 128, n_fft: int = 1024, win_length: int = 400,
                 hop_length: int = 160, f_min: float = 0.0, f_max: float | None = None, top_db: float = 80.0,
                 channels: str = "repeat", image_channels: int = 3, mean: Sequence[float] = (0.5, 0.5, 0.5),
                 std: Sequence[float] = (0.5, 0.5, 0.5), min_frames: int = 32, max_seconds: float = 30.0,
                 augment: Mapping[str, Any] | None = None) -> None:
        if channels not in CHANNEL_MODES:
            raise ConfigError(f"spectrogram: channels must be one of {CHANNEL_MODES}, got {channels!r}")
        if channels == "deltas" and image_channels != 3:
            raise ConfigError(f"spectrogram: channels='deltas' makes 3 channels but the image backbone reads "
                              f"{image_channels}; use channels='repeat'")
        if len(mean) != image_channels or len(std) != image_channels or min(std) <= 0:
            raise ConfigError(f"spectrogram: need {image_channels} mean and positive std values, got {mean}, {std}")
        if min(n_mels, n_fft, win_length, hop_length, sample_rate, min_frames) < 1 or win_length > n_fft:
            raise ConfigError("spectrogram: n_mels, n_fft, win_length, hop_length, sample_rate and min_frames must "
                              f"be positive, win_length <= n_fft; got {n_mels}, {n_fft}, {win_length}, {hop_length}")
        if not top_db > 0 or not max_seconds > 0:
            raise ConfigError(f"spectrogram: top_db and max_seconds must be positive, got {top_db}, {max_seconds}")
        super().__init__()
        self.sample_rate, self.n_mels, self.n_fft = int(sample_rate), int(n_mels), int(n_fft)
        self.win_length, self.hop_length = int(win_length), int(hop_length)
        self.f_min, self.f_max = float(f_min), None if f_max is None else float(f_max)
        self.top_db, self.channels, self.image_channels = float(top_db), channels, int(image_channels)
        self.mean, self.std = tuple(float(v) for v in mean), tuple(float(v) for v in std)
        self.min_frames, self.max_seconds = int(min_frames), float(max_seconds)
        self.augment = dict(augment) if augment else None
        self._mel: Any = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_mel": None}  # the torchaudio module is rebuilt in each worker

    @property
    def max_samples(self) -> int:
        return round(self.max_seconds * self.sample_rate)

    def mel(self) -> Any:
        if self._mel is None:
            import torchaudio

            self._mel = torchaudio.transforms.MelSpectrogram(
                sample_rate=self.sample_rate, n_fft=self.n_fft, win_length=self.win_length,
                hop_length=self.hop_length, f_min=self.f_min, f_max=self.f_max, n_mels=self.n_mels, power=2.0)
        return self._mel

    def image(self, wave: torch.Tensor) -> torch.Tensor:
        """The clip's gray log-mel image ``(n_mels, frames)`` in [0, 1]: 0 = ``top_db`` below its loudest bin (or
        digital silence), 1 = that bin."""
        with torch.no_grad():
            power = self.mel()(wave)
        decibels = 10.0 * torch.log10(power.clamp_min(AMIN))
        floor = torch.clamp_min(decibels.max() - self.top_db, 10.0 * math.log10(AMIN))  # digital silence → 0
        return ((decibels.clamp_min(floor) - floor) / self.top_db).to(torch.float32)

    def _channels(self, gray: torch.Tensor) -> torch.Tensor:
        """Gray image ``(F, T)`` → ``(C, F, T)`` in image range (deltas centred on 0.5), not yet normalised."""
        if self.channels == "repeat":
            return gray.unsqueeze(0).expand(self.image_channels, -1, -1)
        import torchaudio

        delta = torchaudio.functional.compute_deltas(gray[None])[0]
        delta2 = torchaudio.functional.compute_deltas(delta[None])[0]
        return torch.stack([gray, 0.5 + delta, 0.5 + delta2])

    def _silence(self) -> torch.Tensor:
        """The normalised pixel value of silence per channel ``(C, 1, 1)``: what padding and short clips get."""
        raw = [0.0] * self.image_channels if self.channels == "repeat" else [0.0, 0.5, 0.5]
        return torch.tensor([(r - m) / s for r, m, s in zip(raw, self.mean, self.std)]).view(-1, 1, 1)

    def __call__(self, example: Mapping[str, Any]) -> dict[str, Any]:
        wave, truncated = self.cut_waveform(example)
        gray = self.image(wave)
        frames = int(gray.shape[-1])
        if self.augment:
            gray = spec_augment(gray, frames, **self.augment)
        pixels = self._channels(gray)
        mean = torch.tensor(self.mean).view(-1, 1, 1)
        std = torch.tensor(self.std).view(-1, 1, 1)
        return {"pixel_values": (pixels - mean) / std, "frames": frames, "truncated": truncated}

    def collate(self, items: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """``pixel_values`` ``(B, C, n_mels, T)``: every image padded on the right with silence to the batch's
        widest (at least ``min_frames``). No mask: a CNN pools over the whole image, and padding looks exactly
        like the silence a clip already has around its words."""
        if not items:
            raise ValueError("cannot collate an empty batch")
        width = max(self.min_frames, *(int(item["pixel_values"].shape[-1]) for item in items))
        batch = self._silence().expand(self.image_channels, self.n_mels, width)
        batch = batch.unsqueeze(0).repeat(len(items), 1, 1, 1)
        for row, item in enumerate(items):
            value = item["pixel_values"]
            batch[row, :, :, : value.shape[-1]] = value
        return {"pixel_values": batch}

    def for_training(self, *, freq_masks: int = 2, freq_width: int = 16, time_masks: int = 2, time_width: int = 20,  # type: ignore[override]
                     max_time_fraction: float = 0.2) -> SpectrogramPreprocessor:
        """SpecAugment (Park et al. 2019): ``freq_masks`` bands of up to ``freq_width`` mel bins and
        ``time_masks`` spans of up to ``time_width`` frames (at most ``max_time_fraction`` of the clip) set to
        silence before the channels are made."""
        settings = self.augment_settings(freq_masks=freq_masks, freq_width=freq_width, time_masks=time_masks,
                                         time_width=time_width, max_time_fraction=max_time_fraction)
        return SpectrogramPreprocessor(**{**self.settings(), "augment": settings})

    def settings(self) -> dict[str, Any]:
        """The constructor arguments that rebuild this preprocessor (JSON-friendly)."""
        return {"sample_rate": self.sample_rate, "n_mels": self.n_mels, "n_fft": self.n_fft,
                "win_length": self.win_length, "hop_length": self.hop_length, "f_min": self.f_min,
                "f_max": self.f_max, "top_db": self.top_db, "channels": self.channels,
                "image_channels": self.image_channels, "mean": list(self.mean), "std": list(self.std),
                "min_frames": self.min_frames, "max_seconds": self.max_seconds, "augment": self.augment}

    def describe(self) -> dict[str, Any]:
        return {"type": type(self).__name__, "features": "log-mel image (torchaudio MelSpectrogram, dB, "
                f"{self.top_db:g} dB range)", **self.settings()}


class SpectrogramBackbone(Backbone):
    """A log-mel front end (in the preprocessor) before an image backbone ``self.image``."""

    modality = "speech"

    def __init__(self, image: Backbone, preprocessor: SpectrogramPreprocessor, *, image_backbone: str) -> None:
        super().__init__()
        self.image = image
        self.image_backbone = image_backbone
        self._preprocessor = preprocessor
        self.feature_dim = image.feature_dim
        self.map_channels, self.map_strides = tuple(image.map_channels), tuple(image.map_strides)
        self.convolutional = image.convolutional
        self.weights_report: dict[str, Any] = dict(getattr(image, "weights_report", {}) or {"source": None})

    @property
    def preprocessor(self) -> SpectrogramPreprocessor:
        return self._preprocessor

    def forward(self, inputs: Mapping[str, Any]) -> Features:
        return self.image({"pixel_values": inputs["pixel_values"]})

    def attribution_hooks(self) -> AttributionHooks:
        """The log-mel image ``(channels, mel bins, frames)`` against silence; Grad-CAM on the image backbone's
        feature map when it declares one."""
        inner = self.image.attribution_hooks()
        pre = self.preprocessor
        return AttributionHooks(input="pixel_values", kind="spectrogram", baseline=pre._silence(),
                                feature_layer=inner.feature_layer if inner else None,
                                reshape_transform=inner.reshape_transform if inner else None,
                                seconds_per_step=pre.hop_length / pre.sample_rate)

    def export_input_axes(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        """ONNX export: the log-mel image's width follows the clip's duration (``frames``)."""
        return {"pixel_values": {3: "frames"}}

    def layer_groups(self) -> list[nn.Module]:
        """The image backbone's groups (the mel front end has no parameters)."""
        return self.image.layer_groups()

    def freeze(self, trainable_layers: int = 0) -> None:
        self.image.freeze(trainable_layers)

    def unfreeze(self) -> None:
        self.image.unfreeze()

    def export(self, directory: Path) -> dict[str, Any]:
        """Mel settings + ``image_backbone`` + the image backbone's own export (its assets go to ``directory``)."""
        inner = self.image.export(directory)
        return {**self.build_options, **inner}


def create_spectrogram_backbone(*, weights: str | None = None, image_backbone: str = "timm",
                                image_weights: str | None = None, sample_rate: int = 16000, n_mels: int = 128,
                                n_fft: int = 1024, win_length: int = 400, hop_length: int = 160,
                                f_min: float = 0.0, f_max: float | None = None, top_db: float = 80.0,
                                channels: str = "repeat", min_frames: int = 32, max_seconds: float = 30.0,
                                catalog: Any = None, **image_options: Any) -> SpectrogramBackbone:
    """Factory registered as backbone ``spectrogram``.

    Args:
        weights: set by core for a local weights path given as the recipe's ``weights:``; it goes to the image
            backbone (same as ``image_weights``). A polygraft run of this backbone is loaded by core itself.
        image_backbone: any registered image backbone (default ``timm``; ``polygraft list backbones``).
        image_weights: the image backbone's weights: an alias (``efficientnet-lite0-imagenet``), a local file,
            a polygraft run directory; ``None`` = random init.
        sample_rate, n_mels, n_fft, win_length, hop_length, f_min, f_max: the mel spectrogram (defaults: 16 kHz,
            128 mel bins, 25 ms windows every 10 ms). ``top_db``: dynamic range kept below the loudest bin.
        channels: ``repeat`` (gray image in each channel) or ``deltas`` (log-mel, delta, delta-delta).
        min_frames: pad narrower images to this many frames; ``max_seconds``: cut longer clips (counted).
        catalog: supplied by core: the catalog the spectrogram itself is built from.
        **image_options: the image backbone's own options (timm: ``model_name``, ``features``, ``mean``...),
            checked by that backbone's factory.
    """
    import polygraft

    if weights is not None and image_weights is not None:
        raise ConfigError(f"spectrogram: weights={weights!r} and image_weights={image_weights!r} both name the image "
                          "backbone's weights; give one")
    catalog = catalog if catalog is not None else polygraft.build_catalog()
    spec = catalog.get("backbone", image_backbone)  # an unknown name says which plugin provides it
    if spec.modality not in ("vision", "any"):
        raise IncompatibleComponentsError(f"spectrogram feeds a log-mel image to an image backbone; {image_backbone!r} "
                                          f"is a {spec.modality} backbone (try image_backbone: timm)")
    _check_image_options(spec, image_options)
    image = polygraft.create_backbone(image_backbone, weights=image_weights or weights, catalog=catalog,
                                      **image_options)
    described = image.preprocessor.describe()
    mean, std = described.get("mean"), described.get("std")
    if mean is None or std is None:
        raise IncompatibleComponentsError(f"image backbone {image_backbone!r}: its preprocessor describes no mean/std, "
                                          "which spectrogram needs to make pixels like its own")
    image_channels = int(described.get("input_size", [len(mean)])[0])
    mel: dict[str, Any] = dict(sample_rate=sample_rate, n_mels=n_mels, n_fft=n_fft, win_length=win_length, hop_length=hop_length,
               f_min=f_min, f_max=f_max, top_db=top_db, channels=channels, min_frames=min_frames,
               max_seconds=max_seconds)
    preprocessor = SpectrogramPreprocessor(**mel, image_channels=image_channels, mean=mean, std=std)
    backbone = SpectrogramBackbone(image, preprocessor, image_backbone=image_backbone)
    inner = dict(image.build_options)
    clash = sorted(set(inner) & (set(mel) | {"image_backbone", "image_weights"}))
    if clash:
        raise ConfigError(f"spectrogram: image backbone {image_backbone!r} has options named like spectrogram's own "
                          f"({clash}); it cannot be wrapped")
    backbone.build_options = {"image_backbone": image_backbone, **mel, **inner}
    return backbone


def _check_image_options(spec: Any, image_options: Mapping[str, Any]) -> None:
    """The image backbone's own checks (types, required options); a name neither spectrogram nor the image backbone
    knows gets one error listing both sets of options, with the closest name of either."""
    import inspect

    from polygraft.components import check_options
    from polygraft.options import closest, declared_options, option_names

    try:
        check_options(spec, image_options, supplied=("weights",), where="backbone_options of spectrogram")
    except ConfigError:
        inner = option_names(spec.load_factory(), supplied=("weights", "catalog"),
                             declared=declared_options(spec.metadata))
        unknown = [name for name in image_options if name not in inner]
        if not unknown:
            raise
        own = sorted(name for name in inspect.signature(create_spectrogram_backbone).parameters
                     if name not in ("weights", "image_options", "catalog"))
        near = closest(unknown[0], own + inner)
        hint = f"; did you mean {' or '.join(repr(n) for n in near)}?" if near else ""
        raise ConfigError(f"backbone 'spectrogram' has no option {unknown[0]!r}{hint} Its options: {', '.join(own)}; "
                          f"and those of image backbone {spec.name!r}: {', '.join(inner)}") from None


__all__ = ["CHANNEL_MODES", "SpectrogramBackbone", "SpectrogramPreprocessor", "create_spectrogram_backbone"]

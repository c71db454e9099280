"""Whisper's log-mel front end as a picklable polygraft preprocessor (transformers' ``WhisperFeatureExtractor``).

A raw example is ``{"audio": path}`` or ``{"audio": float32 array (frames[, channels]), "sample_rate": int}``. The
audio is mixed to mono and resampled to 16 kHz, cut at 30 s (counted: ``collate_meta`` flags it) and turned into
an 80-bin log-mel spectrogram (n_fft 400, hop 160: 100 frames a second). Two input modes:

* ``padded``: Whisper's own input, the clip padded with silence to 30 s (3,000 frames), as the model was trained;
* ``trimmed``: only the clip's own frames (``ceil(samples / 160)``); a batch is padded with zeros to its longest
  clip and ``attention_mask`` marks the real frames.

``for_training()`` adds SpecAugment-style frequency and time masking of the real frames (opt-in).

Example:
    >>> import numpy as np
    >>> pre = WhisperMelPreprocessor(input_mode="trimmed")
    >>> item = pre({"audio": np.zeros(8000, np.float32), "sample_rate": 8000})
    >>> item["input_features"].shape, item["frames"]
    (torch.Size([80, 100]), 100)
    >>> pre.collate([item])["attention_mask"].shape
    torch.Size([1, 100])
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from polygraft.errors import ConfigError
from polygraft_speech.frontend import AudioFrontEnd

INPUT_MODES = ("padded", "trimmed")


class WhisperMelPreprocessor(AudioFrontEnd):
    """Audio → Whisper log-mel features ``(mel bins, frames)`` plus the number of real frames."""

    limit_name = "Whisper's input limit"

    def __init__(self, *, input_mode: str = "trimmed", num_mel_bins: int = 80, sample_rate: int = 16000,
                 n_fft: int = 400, hop_length: int = 160, max_frames: int = 3000,
                 augment: Mapping[str, Any] | None = None) -> None:
        if input_mode not in INPUT_MODES:
            raise ConfigError(f"input_mode must be one of {INPUT_MODES}, got {input_mode!r}")
        super().__init__()
        self.input_mode = input_mode
        self.num_mel_bins = int(num_mel_bins)
        self.sample_rate = int(sample_rate)
        self.n_fft = int(n_fft)
        self.hop_length = int(hop_length)
        self.max_frames = int(max_frames)  # 2 x the encoder's positions: 3,000 frames = 30 s
        self.augment = dict(augment) if augment else None
        self._extractor: Any = None

    # -- pickling: the transformers extractor (mel filters) is rebuilt on demand ------------------------------
    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_extractor": None}

    @property
    def max_samples(self) -> int:
        return self.max_frames * self.hop_length

    def extractor(self) -> Any:
        if self._extractor is None:
            from transformers import WhisperFeatureExtractor

            self._extractor = WhisperFeatureExtractor(
                feature_size=self.num_mel_bins, sampling_rate=self.sample_rate, hop_length=self.hop_length,
                chunk_length=self.max_samples // self.sample_rate, n_fft=self.n_fft)
        return self._extractor

    # -- one example -------------------------------------------------------------------------------------------
    def __call__(self, example: Mapping[str, Any]) -> dict[str, Any]:
        tensor, truncated = self.cut_waveform(example)
        wave = tensor.numpy()
        frames = max(1, math.ceil(wave.shape[0] / self.hop_length))
        # padded: 30 s of silence after the clip; trimmed: whole hops, at least 2 (the STFT reflects n_fft / 2)
        target = self.max_samples if self.input_mode == "padded" else max(frames, 2) * self.hop_length
        wave = np.pad(wave, (0, target - wave.shape[0]))
        features = self.extractor()(wave, sampling_rate=self.sample_rate, padding=False,
                                    return_tensors="np")["input_features"][0]
        features = torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32))
        if self.input_mode == "trimmed":
            features = features[:, :frames]
        if self.augment:
            features = spec_augment(features, frames, **self.augment)
        return {"input_features": features, "frames": frames, "truncated": truncated}

    # -- batches -----------------------------------------------------------------------------------------------
    def collate(self, items: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """``input_features`` ``(B, mel bins, T)`` (zero-padded to the longest in trimmed mode) and
        ``attention_mask`` ``(B, T)`` bool, True on the frames that hold the clip's audio."""
        if not items:
            raise ValueError("cannot collate an empty batch")
        length = max(int(item["input_features"].shape[-1]) for item in items)
        features = torch.zeros(len(items), self.num_mel_bins, length)
        mask = torch.zeros(len(items), length, dtype=torch.bool)
        for row, item in enumerate(items):
            value = item["input_features"]
            features[row, :, : value.shape[-1]] = value
            mask[row, : int(item["frames"])] = True
        return {"input_features": features, "attention_mask": mask}

    def for_training(self, *, freq_masks: int = 2, freq_width: int = 27, time_masks: int = 2, time_width: int = 40,  # type: ignore[override]
                     max_time_fraction: float = 0.2) -> WhisperMelPreprocessor:
        """SpecAugment-style masking (Park et al. 2019): ``freq_masks`` bands of up to ``freq_width`` mel bins
        and ``time_masks`` spans of up to ``time_width`` frames (each at most ``max_time_fraction`` of the clip's
        real frames) are set to zero, the value Whisper's own SpecAugment uses."""
        settings = self.augment_settings(freq_masks=freq_masks, freq_width=freq_width, time_masks=time_masks,
                                         time_width=time_width, max_time_fraction=max_time_fraction)
        trained = WhisperMelPreprocessor(input_mode=self.input_mode, num_mel_bins=self.num_mel_bins,
                                         sample_rate=self.sample_rate, n_fft=self.n_fft, hop_length=self.hop_length,
                                         max_frames=self.max_frames, augment=settings)
        trained._extractor = self._extractor
        return trained

    def describe(self) -> dict[str, Any]:
        return {"type": type(self).__name__, "features": "whisper log-mel (transformers WhisperFeatureExtractor)",
                "input_mode": self.input_mode, "num_mel_bins": self.num_mel_bins, "sample_rate": self.sample_rate,
                "n_fft": self.n_fft, "hop_length": self.hop_length, "max_seconds": self.max_samples / self.sample_rate,
                "augment": self.augment}


def spec_augment(features: torch.Tensor, frames: int, *, freq_masks: int, freq_width: int, time_masks: int,
                 time_width: int, max_time_fraction: float) -> torch.Tensor:
    """Zero random mel bands and time spans inside the first ``frames`` frames of ``(mel bins, T)`` features
    (torchaudio's ``mask_along_axis``; padding frames stay as they are)."""
    import torchaudio

    out = features.clone()
    real = out[None, :, :frames]  # (channel, freq, time) view: the masks write into ``out``
    for _ in range(freq_masks):
        real[:] = torchaudio.functional.mask_along_axis(real, min(freq_width, real.shape[1]), 0.0, axis=1)
    for _ in range(time_masks):
        real[:] = torchaudio.functional.mask_along_axis(real, time_width, 0.0, axis=2, p=max_time_fraction)
    return out

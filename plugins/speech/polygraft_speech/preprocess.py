"""The waveform preprocessor: any clip → mono float32 at the model's rate, normalised per clip, padded per batch.

``{"audio": path | array, "sample_rate": int}`` → ``{"input_values": (T,) float}``; ``collate`` pads to the
batch's longest clip with zeros and returns ``attention_mask`` (1 = real sample). Normalisation is
zero-mean / unit-variance per clip over its real samples, exactly as Hugging Face's
``Wav2Vec2FeatureExtractor(do_normalize=True)``. ``for_training(noise=True, snr_db=(10, 30))`` adds Gaussian
noise at a random signal-to-noise ratio (torch's RNG, seeded per DataLoader worker by the trainer).

Example:
    >>> import numpy as np
    >>> from polygraft_speech.preprocess import WaveformPreprocessor
    >>> pre = WaveformPreprocessor(sample_rate=16000)
    >>> batch = pre.collate([pre({"audio": np.ones((8000, 2), "float32"), "sample_rate": 8000}),
    ...                      pre({"audio": np.ones(4000, "float32"), "sample_rate": 16000})])
    >>> batch["input_values"].shape, batch["attention_mask"].sum(1).tolist()
    (torch.Size([2, 16000]), [16000, 4000])
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from polygraft.errors import ConfigError, DataError
from polygraft.interfaces.preprocessor import Preprocessor
from polygraft_speech.audio import load_mono, probe_audio, to_mono_at_rate

NORMALIZE_EPS = 1e-7  # as transformers' Wav2Vec2FeatureExtractor.zero_mean_unit_var_norm


class WaveformPreprocessor(Preprocessor):
    """Raw waveform in, ``input_values`` + ``attention_mask`` out (wav2vec2 / HuBERT inputs).

    Args:
        sample_rate: the model's rate; clips at other rates are resampled (torchaudio).
        normalize: zero-mean unit-variance per clip (``do_normalize`` of HF's feature extractor).
        noise: add Gaussian noise (training variant, see :meth:`for_training`).
        snr_db: the ``(low, high)`` signal-to-noise range in dB the noise level is drawn from.
        noise_prob: the chance each clip gets noise.
        max_seconds: longer clips are cut to their first ``max_seconds`` (flagged in ``collate_meta`` and
            counted); ``None`` keeps every clip whole. Command-line inputs are read only up to it.
    """

    input_key = "audio"

    def __init__(self, *, sample_rate: int = 16_000, normalize: bool = True, noise: bool = False,
                 snr_db: Sequence[float] = (10.0, 30.0), noise_prob: float = 1.0,
                 max_seconds: float | None = None) -> None:
        if int(sample_rate) <= 0:
            raise ConfigError(f"sample_rate must be positive, got {sample_rate}")
        if max_seconds is not None and not 0 < float(max_seconds) <= 36_000:
            raise ConfigError(f"max_seconds must be in (0, 36000] (or null), got {max_seconds}")
        low, high = (float(v) for v in snr_db)
        if low > high or not 0.0 <= float(noise_prob) <= 1.0:
            raise ConfigError(f"need snr_db=(low, high) with low <= high and 0 <= noise_prob <= 1, got {snr_db}, "
                              f"{noise_prob}")
        self.sample_rate = int(sample_rate)
        self.normalize = bool(normalize)
        self.noise = bool(noise)
        self.snr_db = (low, high)
        self.noise_prob = float(noise_prob)
        self.max_seconds = None if max_seconds is None else float(max_seconds)
        self.deterministic = not self.noise  # the trainer may keep prepared clips unless noise is added

    # -- variants -------------------------------------------------------------------------------------------
    def for_training(self, *, noise: bool = True, snr_db: Sequence[float] = (10.0, 30.0),  # type: ignore[override]
                     noise_prob: float = 1.0) -> WaveformPreprocessor:
        """The training variant: additive Gaussian noise at a random SNR in ``snr_db`` (dB)."""
        return WaveformPreprocessor(sample_rate=self.sample_rate, normalize=self.normalize, noise=noise,
                                    snr_db=snr_db, noise_prob=noise_prob, max_seconds=self.max_seconds)

    # -- one example ----------------------------------------------------------------------------------------
    def waveform(self, example: Mapping[str, Any]) -> torch.Tensor:
        """The clip as a 1-D float32 tensor at ``sample_rate`` (mono), before noise and normalisation."""
        origin = example.get("_origin")
        if self.input_key not in example:
            raise DataError(f"example has no 'audio' key (keys: {sorted(example)})", path=origin)
        value = example[self.input_key]
        if isinstance(value, str | Path):
            samples, rate = load_mono(value)
        else:
            rate = example.get("sample_rate")
            if rate is None:
                raise DataError("an audio array needs its 'sample_rate' in the example", path=origin)
            samples = value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)
            if samples.ndim == 2 and samples.shape[0] < samples.shape[1] and samples.shape[0] <= 8:
                samples = samples.T  # (channels, frames) → (frames, channels)
            if samples.ndim not in (1, 2) or samples.shape[0] == 0:
                raise DataError(f"audio must be a non-empty (frames,) or (frames, channels) array, got shape "
                                f"{samples.shape}", path=origin)
            if not np.issubdtype(samples.dtype, np.floating):
                raise DataError(f"audio arrays must hold floats in [-1, 1], got {samples.dtype}", path=origin)
            if not np.isfinite(samples).all():
                raise DataError("audio holds NaN or infinite samples", path=origin)
        return to_mono_at_rate(samples, int(rate), self.sample_rate)

    def __call__(self, example: Mapping[str, Any]) -> dict[str, Any]:
        wave = self.waveform(example)
        limit = None if self.max_seconds is None else round(self.max_seconds * self.sample_rate)
        truncated = limit is not None and wave.shape[0] > limit
        if truncated:
            wave = wave[:limit]
        if self.noise and float(torch.rand(())) < self.noise_prob:
            snr = self.snr_db[0] + (self.snr_db[1] - self.snr_db[0]) * float(torch.rand(()))
            power = float(wave.pow(2).mean())
            if power > 0:
                wave = wave + torch.randn_like(wave) * (power / 10 ** (snr / 10)) ** 0.5
        if self.normalize:
            wave = (wave - wave.mean()) / torch.sqrt(wave.var(unbiased=False) + NORMALIZE_EPS)
        return {"input_values": wave.to(torch.float32), "truncated": truncated}

    def collate_meta(self, items: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """``truncated``: (B,) bool, clips longer than ``max_seconds`` that were cut."""
        return {"truncated": torch.tensor([bool(item.get("truncated", False)) for item in items])}

    def callbacks(self) -> list[Any]:
        """Counts the clips cut at ``max_seconds`` into the run log and results."""
        import polygraft

        return [polygraft.TruncationCounter()] if self.max_seconds is not None else []

    # -- batches --------------------------------------------------------------------------------------------
    def collate(self, items: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """``input_values`` (B, T) zero-padded to the longest clip and ``attention_mask`` (B, T) long."""
        if not items:
            raise ValueError("cannot collate an empty batch")
        longest = max(int(item["input_values"].shape[0]) for item in items)
        values = torch.zeros(len(items), longest, dtype=torch.float32)
        mask = torch.zeros(len(items), longest, dtype=torch.long)
        for row, item in enumerate(items):
            length = int(item["input_values"].shape[0])
            values[row, :length] = item["input_values"]
            mask[row, :length] = 1
        return {"input_values": values, "attention_mask": mask}

    def length_of(self, inputs: Mapping[str, Any]) -> int:
        """Samples of one prepared clip."""
        return int(inputs["input_values"].shape[0])

    def lengths(self, examples: Sequence[Mapping[str, Any]]) -> list[int]:
        """Samples at ``sample_rate`` per raw example, from each example's array or file header (never a full
        decode of a file). Audio datasets know their durations themselves (``DataSource.lengths``), so the trainer
        asks this only of other sources."""
        result = []
        for index in range(len(examples)):
            example = examples[index]
            value = example.get(self.input_key)
            if isinstance(value, str | Path):
                info = probe_audio(value)
                result.append(round(info.duration * self.sample_rate))
            else:
                frames = max(np.shape(value)) if np.ndim(value) else 0
                rate = example.get("sample_rate") or self.sample_rate
                result.append(round(frames * self.sample_rate / int(rate)))
        return result

    def read_input(self, value: str, *, max_seconds: float | None = None) -> dict[str, Any]:
        """A raw example from a command-line value: the audio file at ``value``, decoded to mono (checked), read
        only up to ``max_seconds`` (the model's limit; one sample more, so the cut is seen and counted)."""
        limit = self.max_seconds if max_seconds is None else max_seconds
        frames = None
        if limit is not None:
            info = probe_audio(value)
            frames = min(info.frames, math.ceil(limit * info.sample_rate) + 1)
        samples, rate = load_mono(value, max_frames=frames)
        return {self.input_key: samples, "sample_rate": rate, "_origin": value}

    def describe(self) -> dict[str, Any]:
        described: dict[str, Any] = {"type": "waveform", "sample_rate": self.sample_rate,
                                     "normalize": self.normalize}
        if self.max_seconds is not None:
            described["max_seconds"] = self.max_seconds
        if self.noise:
            described.update(noise=True, snr_db=list(self.snr_db), noise_prob=self.noise_prob)
        return described

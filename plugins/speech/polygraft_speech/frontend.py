"""What the two spectrogram front ends share: reading a clip, cutting it at the model's limit (counted), the
bookkeeping they report, lengths, SpecAugment settings and command-line input.

:class:`~polygraft_speech.mel.WhisperMelPreprocessor` (Whisper's log-mel features) and
:class:`~polygraft_speech.spectrogram.SpectrogramPreprocessor` (a log-mel image for image backbones) both subclass
:class:`AudioFrontEnd`; they differ only in the features they compute from the cut waveform.

Example:
    >>> from polygraft_speech.frontend import AudioFrontEnd
    >>> AudioFrontEnd.augment_settings(freq_masks=1, freq_width=8, time_masks=1, time_width=10,
    ...                                max_time_fraction=0.1)["time_width"]
    10
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from polygraft.errors import ConfigError, DataError
from polygraft.interfaces import Preprocessor
from polygraft_speech.preprocess import WaveformPreprocessor

logger = logging.getLogger(__name__)


class AudioFrontEnd(Preprocessor):
    """Base of the spectrogram front ends: ``sample_rate``, ``max_samples`` (the longest clip kept) and
    ``augment`` (SpecAugment settings, ``None`` = off) are set by the subclass."""

    input_key = "audio"
    sample_rate: int = 16000
    augment: dict[str, Any] | None = None
    #: how the first cut in a process is described in the log (``"Whisper's 30 s"``)
    limit_name: str = "max_seconds"

    def __init__(self) -> None:
        self.truncated_clips = 0  # clips cut at max_samples in this process (also flagged per batch)

    @property
    def max_samples(self) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def deterministic(self) -> bool:  # type: ignore[override]
        """The same clip gives the same features unless SpecAugment is on."""
        return self.augment is None

    def _reader(self) -> WaveformPreprocessor:
        return WaveformPreprocessor(sample_rate=self.sample_rate, normalize=False)

    def cut_waveform(self, example: Mapping[str, Any]) -> tuple[torch.Tensor, bool]:
        """The example's mono waveform at ``sample_rate``, cut at ``max_samples``, and whether it was cut (the first
        cut in a process is logged; every cut is flagged in ``collate_meta`` and counted by the trainer)."""
        wave = self._reader().waveform(example)
        if wave.numel() == 0:
            raise DataError("audio is empty after resampling", path=example.get("_origin"))
        truncated = wave.shape[0] > self.max_samples
        if truncated:
            self.truncated_clips += 1
            if self.truncated_clips == 1:
                logger.warning("%s: clip of %.1f s cut to %.0f s (%s; further cuts are counted, not logged)",
                               example.get("_origin") or "audio", wave.shape[0] / self.sample_rate,
                               self.max_samples / self.sample_rate, self.limit_name)
            wave = wave[: self.max_samples]
        return wave, truncated

    def waveform(self, example: Mapping[str, Any]) -> torch.Tensor:
        """The example's mono waveform at ``sample_rate``, cut at the model's limit (what the features are made
        from; exporters feed it to other libraries' feature extractors)."""
        return self.cut_waveform(example)[0]

    def collate_meta(self, items: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """``truncated``: (B,) bool, clips longer than the model's limit that were cut."""
        return {"truncated": torch.tensor([bool(item["truncated"]) for item in items])}

    def callbacks(self) -> list[Any]:
        """Counts the cut clips (``meta["truncated"]``) into the run log and results."""
        import polygraft

        return [polygraft.TruncationCounter()]

    def lengths(self, examples: Sequence[Mapping[str, Any]]) -> list[int]:
        """Samples at ``sample_rate`` per raw example (at most ``max_samples``), from array sizes or file headers
        (files are not decoded)."""
        return [min(self.max_samples, n) for n in self._reader().lengths(examples)]

    def length_of(self, inputs: Mapping[str, Any]) -> int:
        """Frames of one prepared clip."""
        return int(inputs["frames"])

    def read_input(self, value: str) -> dict[str, Any]:
        """The audio file at ``value`` decoded to mono, read only up to the model's limit (DataError naming it when
        it is not audio): a 10-hour recording costs what 30 s cost."""
        return self._reader().read_input(value, max_seconds=self.max_samples / self.sample_rate)

    @staticmethod
    def augment_settings(*, freq_masks: int, freq_width: int, time_masks: int, time_width: int,
                         max_time_fraction: float) -> dict[str, Any]:
        """SpecAugment settings (Park et al. 2019), checked: ``freq_masks`` bands of up to ``freq_width`` mel bins
        and ``time_masks`` spans of up to ``time_width`` frames (each at most ``max_time_fraction`` of the clip)."""
        settings = {"freq_masks": int(freq_masks), "freq_width": int(freq_width), "time_masks": int(time_masks),
                    "time_width": int(time_width), "max_time_fraction": float(max_time_fraction)}
        if min(settings.values()) < 0 or settings["max_time_fraction"] > 1:
            raise ConfigError(f"SpecAugment settings must be >= 0 (and max_time_fraction <= 1): {settings}")
        return settings

"""The file-backed audio source every speech dataset builds on: headers checked at open, clips decoded lazily.

At open time each clip's header is read (:func:`~polygraft_speech.audio.probe_audio`: frames, rate, channels),
so a bad file is reported before training starts, naming the file and the manifest row that lists it. Clips
longer than ``max_duration`` seconds are cropped (``on_long="crop"``, counted in ``source.changed``) or refused
(``on_long="refuse"``: a DataError, or with ``skip_invalid`` a counted skip). Decoding (mono mix, crop) happens
in :meth:`AudioFileSource._example`, inside DataLoader workers. :meth:`AudioFileSource.durations` gives every
clip's length from the headers, so length-grouped batching never decodes the data set.

Example:
    >>> import tempfile, pathlib, numpy as np, soundfile
    >>> from polygraft_speech.datasets.source import AudioFileSource, AudioRecord
    >>> clip = pathlib.Path(tempfile.mkdtemp()) / "a.wav"
    >>> soundfile.write(clip, np.zeros((8000, 2), dtype=np.float32), 8000)
    >>> source = AudioFileSource([AudioRecord(clip, {"label": "yes"}, "a.wav")], label_names=["yes"], name="x")
    >>> example = source[0]
    >>> example["audio"].shape, example["sample_rate"], source.durations()
    ((8000,), 8000, [1.0])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from polygraft.errors import ConfigError, DataError
from polygraft.interfaces.datasource import DataSource, files_fingerprint
from polygraft_speech.audio import load_mono, probe_audio

ON_LONG = ("crop", "refuse")


@dataclass
class AudioRecord:
    """One clip: its file, its target (``{"label": ...}`` / ``{"transcript": ...}``), where it was listed, and
    (once probed) its header facts. ``max_frames`` is set when the clip is cropped to ``max_duration``."""

    path: Path
    target: dict[str, Any]
    origin: str
    frames: int = 0
    sample_rate: int = 0
    channels: int = 0
    max_frames: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def kept_frames(self) -> int:
        return self.frames if self.max_frames is None else min(self.frames, self.max_frames)


def check_long_options(max_duration: float | None, on_long: str) -> None:
    if on_long not in ON_LONG:
        raise ConfigError(f"on_long must be one of {ON_LONG}, got {on_long!r}")
    if max_duration is not None and not max_duration > 0:
        raise ConfigError(f"max_duration must be a positive number of seconds, got {max_duration!r}")


class AudioFileSource(DataSource):
    """Clips listed by :class:`AudioRecord`; examples are ``{"audio": float32 mono array, "sample_rate": int,
    <target>, "_origin": "file[:row]"}``.

    Args:
        records: the clips, in order.
        label_names: class names (``None`` for transcripts).
        name: the dataset name shown in reports.
        skip_invalid: skip (and count) bad files instead of raising.
        max_duration: longest clip in seconds (``None``: no limit).
        on_long: ``crop`` (keep the first ``max_duration`` seconds; counted) or ``refuse``.
        probe: read every header now (``False`` only for records whose frames/rate are already known, such as
            the manifests polygraft writes itself).
    """

    storage = "files"  # each read decodes a file, the same way every time (the trainer may keep the result)

    def __init__(self, records: Sequence[AudioRecord], *, label_names: list[str] | None, name: str,
                 skip_invalid: bool = False, max_duration: float | None = None, on_long: str = "crop",
                 probe: bool = True) -> None:
        super().__init__()
        check_long_options(max_duration, on_long)
        self.name = name
        self.label_names = label_names
        self.max_duration = max_duration
        self.on_long = on_long
        self.records: list[AudioRecord] = []
        for record in records:
            if probe:
                try:
                    info = probe_audio(record.path)
                except DataError as exc:
                    self._refuse(record, exc.reason, "unreadable audio file", skip_invalid)
                    continue
                record.frames, record.sample_rate, record.channels = info.frames, info.sample_rate, info.channels
            if max_duration is not None and record.frames > max_duration * record.sample_rate:
                seconds = record.frames / record.sample_rate
                if on_long == "refuse":
                    self._refuse(record, f"clip lasts {seconds:.2f} s, longer than max_duration="
                                 f"{max_duration:g} s (on_long='refuse'; use on_long='crop' to keep its start)",
                                 f"longer than max_duration ({max_duration:g} s)", skip_invalid)
                    continue
                record.max_frames = int(max_duration * record.sample_rate)
                self.change(f"cropped to max_duration ({max_duration:g} s)", record.origin)
            self.records.append(record)

    def _refuse(self, record: AudioRecord, message: str, reason: str, skip_invalid: bool) -> None:
        if skip_invalid:
            self.skip(reason, record.origin)
            return
        listed = f" (listed at {record.origin})" if record.origin != str(record.path) else ""
        raise DataError(f"{message}{listed}; pass skip_invalid=true to skip and count bad files", path=record.path)

    def __len__(self) -> int:
        return len(self.records)

    def durations(self) -> list[float]:
        """Seconds of audio each example yields (after cropping), from the headers: nothing is decoded."""
        return [record.kept_frames / record.sample_rate for record in self.records]

    def lengths(self) -> list[int]:
        """Milliseconds of audio each example yields (after cropping), from the headers: what length-grouped
        batching and longest-first evaluation order by."""
        return [round(seconds * 1000) for seconds in self.durations()]

    def _example(self, index: int) -> dict[str, Any]:
        record = self.records[index]
        try:
            audio, rate = load_mono(record.path, max_frames=record.max_frames)
        except DataError as exc:
            listed = f" (listed at {record.origin})" if record.origin != str(record.path) else ""
            raise DataError(exc.reason + listed, path=record.path) from exc
        return {"audio": audio, "sample_rate": rate, **record.target, "_origin": record.origin}

    def fingerprint(self) -> str | None:
        """Every clip's path, size and modification time, target, origin and crop, and the reading options."""
        return files_fingerprint([type(self).__name__, self.name, self.label_names, self.max_duration, self.on_long],
                                 ((r.path, [r.target, r.origin, r.max_frames]) for r in self.records))

    def describe(self) -> dict[str, Any]:
        seconds = sum(self.durations())
        return {**super().describe(), "hours": round(seconds / 3600, 4), "max_duration": self.max_duration,
                "on_long": self.on_long}

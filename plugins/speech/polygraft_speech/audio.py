"""Reading and normalising audio: decode with soundfile, mix to mono, resample with torchaudio.

Every failure is a :class:`~polygraft.errors.DataError` naming the file (never a bare library traceback):
a missing file, a folder, an empty (0-byte) file, a text file named ``.wav``, a header without samples, a
truncated or non-finite file. :func:`probe_audio` reads only the header (cheap validation and durations at
open time); :func:`load_mono` decodes one clip to a mono float32 array at the file's rate.

Example:
    >>> import numpy as np
    >>> from polygraft_speech.audio import to_mono_at_rate
    >>> to_mono_at_rate(np.zeros((8000, 2), dtype=np.float32), 8000, 16000).shape
    torch.Size([16000])
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from polygraft.errors import DataError
from polygraft.paths import file_problem

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aiff", ".aif", ".aifc", ".au", ".snd",
                    ".w64", ".caf", ".rf64")
"""File extensions the dataset readers treat as audio (anything libsndfile decodes)."""


@dataclass(frozen=True)
class AudioInfo:
    """What a file's header says: frames per channel, sample rate, channel count."""

    frames: int
    sample_rate: int
    channels: int

    @property
    def duration(self) -> float:
        """Seconds of audio."""
        return self.frames / self.sample_rate


def _check_file(path: Path) -> None:
    """Refuse what is not a regular file before soundfile opens it (a FIFO would block forever)."""
    problem = file_problem(path)
    if problem == "does not exist":
        raise DataError("audio file does not exist", path=path)
    if problem == "is a folder, not a file":
        raise DataError("is a folder, not an audio file", path=path)
    if problem is not None:
        raise DataError(problem, path=path)


def _open_error(path: Path, exc: Exception) -> DataError:
    """The DataError for a file soundfile cannot open, saying which of the usual causes it is."""
    problem = file_problem(path)
    if problem is not None:
        return DataError("audio file does not exist" if problem == "does not exist" else problem, path=path)
    try:
        size = path.stat().st_size
    except OSError:
        size = -1
    if size == 0:
        return DataError("audio file is empty (0 bytes)", path=path)
    try:
        with path.open("rb") as handle:
            head = handle.read(512)
    except OSError as read_exc:
        return DataError(f"cannot read audio file: {read_exc}", path=path)
    if head and all(32 <= b < 127 or b in (9, 10, 13) for b in head):
        return DataError("holds text, not audio", path=path)
    message = str(exc).split(": ", 1)[-1] if "Error opening" in str(exc) else str(exc)
    return DataError(f"not an audio file soundfile can decode ({message.strip()})", path=path)


def probe_audio(path: str | Path) -> AudioInfo:
    """Read only the header of ``path``; DataError naming the file when it is unreadable or holds no samples."""
    import soundfile

    path = Path(path)
    _check_file(path)
    try:
        info = soundfile.info(str(path))
    except (RuntimeError, soundfile.LibsndfileError, OSError) as exc:
        raise _open_error(path, exc) from exc
    if int(info.samplerate) <= 0 or int(info.channels) <= 0:
        raise DataError(f"header claims {info.samplerate} Hz and {info.channels} channels", path=path)
    if int(info.frames) <= 0:
        raise DataError("audio file holds no samples (a header without audio data)", path=path)
    return AudioInfo(frames=int(info.frames), sample_rate=int(info.samplerate), channels=int(info.channels))


def read_audio(path: str | Path) -> tuple[np.ndarray, int]:
    """``(samples, sample_rate)`` with samples as float32 ``(frames, channels)``; DataError naming the file."""
    return _read(Path(path), frames=-1)


def _read(path: Path, *, frames: int) -> tuple[np.ndarray, int]:
    import soundfile

    _check_file(path)
    try:
        samples, rate = soundfile.read(str(path), frames=frames, dtype="float32", always_2d=True)
    except (RuntimeError, soundfile.LibsndfileError, OSError) as exc:
        raise _open_error(path, exc) from exc
    except MemoryError:  # a genuine but very long file decoded whole: say so, it is not corrupt
        info = probe_audio(path)
        raise DataError(f"clip lasts {_hours(info.duration)} ({info.frames:,} frames): too long to decode at once; "
                        "set the dataset's max_duration (or the model's max_seconds) to read only its start",
                        path=path) from None
    except ValueError as exc:  # damaged headers claiming absurd sizes
        raise DataError(f"audio data is corrupt: {exc}", path=path) from exc
    if samples.shape[0] == 0:
        raise DataError("audio file holds no samples (zero length)", path=path)
    if not np.isfinite(samples).all():
        raise DataError("audio holds NaN or infinite samples", path=path)
    return samples, int(rate)


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds:.0f} s"


def load_mono(path: str | Path, *, max_frames: int | None = None) -> tuple[np.ndarray, int]:
    """Decode ``path`` (at most ``max_frames`` frames) to a 1-D float32 mono array at the file's own rate."""
    samples, rate = _read(Path(path), frames=-1 if max_frames is None else int(max_frames))
    mono = samples[:, 0] if samples.shape[1] == 1 else samples.mean(axis=1)
    return np.ascontiguousarray(mono, dtype=np.float32), rate


def to_mono_at_rate(samples: Any, rate: int, target_rate: int) -> Any:
    """A 1-D float32 torch tensor: channels averaged (``(frames, channels)`` or 1-D input), resampled."""
    import torch
    import torchaudio

    wave = torch.as_tensor(np.asarray(samples, dtype=np.float32))
    if wave.dim() == 2:
        wave = wave.mean(dim=1)
    if int(rate) != int(target_rate):
        wave = torchaudio.functional.resample(wave, int(rate), int(target_rate))
    return wave.contiguous()


def load_audio(path: str | Path, target_rate: int) -> Any:
    """Decode ``path``, mix to mono and resample: a 1-D float32 torch tensor at ``target_rate``."""
    mono, rate = load_mono(path)
    return to_mono_at_rate(mono, rate, target_rate)


__all__ = ["AUDIO_EXTENSIONS", "AudioInfo", "load_audio", "load_mono", "probe_audio", "read_audio",
           "to_mono_at_rate"]

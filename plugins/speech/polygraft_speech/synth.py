"""Speech generated with Debian's espeak-ng: verified voices, silence-trimmed 16 kHz clips, atomic caches.

``espeak-ng -v VOICE -s SPEED -p PITCH --stdout TEXT`` writes a 22,050 Hz WAV (about 12 ms a clip). A voice is
a language (``en-us``, ``en-gb-scotland``...) optionally with a variant (``en+f3``). espeak-ng silently falls
back to the plain language for an unknown variant, so voices are verified by hashing their output
(:func:`verify_voices`): a voice that sounds exactly like its plain language or like another voice is dropped,
with the reason kept in the cache's ``info.json``. Clips that come out byte-identical for two voices (the same
words, speed and pitch) also drop the later voice, so held-out voices never repeat a training clip.

:func:`generate` renders a plan of clips into a temporary folder and renames it into place only when the
manifest and ``info.json`` are written: a folder without ``info.json`` is never trusted.

Example:
    >>> import tempfile, pathlib
    >>> from polygraft_speech.synth import ClipPlan, generate
    >>> folder = pathlib.Path(tempfile.mkdtemp()) / "cache"
    >>> plan = [ClipPlan("seven", "en-us", 160, 50, "train", {"label": "seven"})]
    >>> info = generate(folder, plan, params={"demo": 1})
    >>> info["clips"], (folder / "manifest.jsonl").is_file()
    ({'train': 1}, True)
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from polygraft.errors import AssetError, ConfigError

logger = logging.getLogger(__name__)

ESPEAK_RATE = 22_050
SAMPLE_RATE = 16_000
TIMEOUT_S = 30.0
PROBE_TEXT = "zero one two three four five six seven eight nine"
TRIM_DB = -40.0
TRIM_PAD_S = 0.02

DEFAULT_VOICES: tuple[str, ...] = (
    # seven accents ...
    "en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-029",
    # ... and 21 accent + variant voices, each variant used once (no timbre shared across splits)
    "en+m1", "en+m3", "en+m5", "en+f1", "en+f3", "en+f5", "en+croak", "en+klatt",
    "en-us+m2", "en-us+m4", "en-us+f2", "en-us+f4", "en-us+klatt2", "en-us+iven", "en-us+linda",
    "en-gb-scotland+m6", "en-gb-scotland+Annie", "en-gb-scotland+john",
    "en-029+m7", "en-029+klatt3", "en-029+max",
)
"""28 voices verified distinct with espeak-ng 1.51. ``en-us-nyc`` is left out: 7 of its 10 digits are
byte-identical to ``en-us``."""


@dataclass(frozen=True)
class ClipPlan:
    """One clip to render: the words, the voice, speed (words per minute), pitch (0-99), split and target."""

    text: str
    voice: str
    speed: int
    pitch: int
    split: str
    target: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)


def espeak_binary() -> str:
    """The espeak-ng executable, or AssetError saying how to install it."""
    found = shutil.which("espeak-ng")
    if found is None:
        raise AssetError("espeak-ng is not installed; it generates the spoken-digit data sets: "
                         "apt-get install espeak-ng (Debian/Ubuntu; `make setup` does it when run as root)")
    return found


def espeak_version(binary: str) -> str:
    try:
        result = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=TIMEOUT_S)
    except (OSError, subprocess.SubprocessError) as exc:
        raise AssetError(f"cannot run {binary}: {exc}; reinstall it: apt-get install --reinstall espeak-ng"
                         ) from exc
    return result.stdout.strip()


def speak(binary: str, text: str, voice: str, speed: int = 175, pitch: int = 50) -> bytes:
    """The WAV bytes espeak-ng writes for ``text``; ConfigError for a voice it refuses, AssetError if it breaks."""
    command = [binary, "-v", voice, "-s", str(int(speed)), "-p", str(int(pitch)), "--stdout", text]
    try:
        result = subprocess.run(command, capture_output=True, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired as exc:
        raise AssetError(f"espeak-ng took over {TIMEOUT_S:g} s for {text!r} (voice {voice}); is it working?"
                         ) from exc
    except OSError as exc:
        raise AssetError(f"cannot run espeak-ng: {exc}; reinstall it: apt-get install espeak-ng") from exc
    if result.returncode != 0 or len(result.stdout) <= 44:
        message = result.stderr.decode(errors="replace").strip() or f"exit status {result.returncode}"
        raise ConfigError(f"espeak-ng cannot speak with voice {voice!r}: {message} (see `espeak-ng --voices=en`)")
    return result.stdout


def verify_voices(binary: str, voices: Sequence[str]) -> tuple[list[str], dict[str, str]]:
    """``(kept, dropped)``: a voice is dropped (with the reason) when espeak refuses it, when it sounds exactly
    like its plain language (an unknown variant falls back silently) or like an earlier voice."""
    kept: list[str] = []
    dropped: dict[str, str] = {}
    seen: dict[str, str] = {}
    plain: dict[str, str] = {}
    for voice in voices:
        if voice in seen.values() or voice in dropped:
            continue
        try:
            digest = hashlib.sha1(speak(binary, PROBE_TEXT, voice)).hexdigest()
            language = voice.split("+", 1)[0]
            if "+" in voice and language not in plain:
                plain[language] = hashlib.sha1(speak(binary, PROBE_TEXT, language)).hexdigest()
        except ConfigError as exc:
            dropped[voice] = str(exc)
            continue
        if "+" in voice and digest == plain[voice.split("+", 1)[0]]:
            dropped[voice] = f"sounds exactly like {voice.split('+', 1)[0]!r}: espeak-ng does not know the variant"
        elif digest in seen:
            dropped[voice] = f"sounds exactly like {seen[digest]!r}"
        else:
            seen[digest] = voice
            kept.append(voice)
    for voice, reason in dropped.items():
        logger.warning("espeak-ng voice %s dropped: %s", voice, reason)
    return kept, dropped


def trim_silence(wave: np.ndarray, rate: int, *, threshold_db: float = TRIM_DB,
                 pad_s: float = TRIM_PAD_S) -> np.ndarray:
    """Cut leading and trailing samples quieter than ``threshold_db`` below the peak (keeping ``pad_s``)."""
    level = np.abs(wave)
    peak = float(level.max()) if level.size else 0.0
    if peak <= 0:
        return wave
    loud = np.flatnonzero(level >= peak * 10 ** (threshold_db / 20))
    pad = int(pad_s * rate)
    return wave[max(int(loud[0]) - pad, 0): min(int(loud[-1]) + pad + 1, len(wave))]


class _Renderer:
    """Decode espeak's WAV, trim, resample to 16 kHz (one torchaudio resampler shared by the threads)."""

    def __init__(self) -> None:
        import torchaudio

        self.resample = torchaudio.transforms.Resample(ESPEAK_RATE, SAMPLE_RATE)

    def __call__(self, raw: bytes) -> np.ndarray:
        import soundfile
        import torch

        samples, rate = soundfile.read(io.BytesIO(raw), dtype="float32", always_2d=True)
        wave = trim_silence(samples.mean(axis=1), rate)
        if rate != ESPEAK_RATE:
            import torchaudio

            return torchaudio.functional.resample(torch.from_numpy(wave), rate, SAMPLE_RATE).numpy()
        with torch.no_grad():
            return self.resample(torch.from_numpy(np.ascontiguousarray(wave))).numpy()


def _file_name(index: int, clip: ClipPlan) -> str:
    voice = "".join(c if c.isalnum() or c in "-" else "_" for c in clip.voice)
    return f"clips/{voice}/{index:06d}.wav"


def generate(target: Path, plan: Sequence[ClipPlan], *, params: dict[str, Any],
             dropped_voices: dict[str, str] | None = None, workers: int | None = None) -> dict[str, Any]:
    """Render ``plan`` into ``target`` (``manifest.jsonl``, ``info.json``, ``clips/``) atomically; returns info."""
    import soundfile
    import torch

    binary = espeak_binary()
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.parent / f".{target.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    temporary.mkdir()
    started = time.perf_counter()
    render = _Renderer()
    workers = workers or max(1, min(4, os.cpu_count() or 1))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the threads below each resample one short clip

    def make(index: int) -> tuple[str, int, str]:
        clip = plan[index]
        raw = speak(binary, clip.text, clip.voice, clip.speed, clip.pitch)
        wave = render(raw)
        name = _file_name(index, clip)
        (temporary / name).parent.mkdir(parents=True, exist_ok=True)
        soundfile.write(str(temporary / name), wave, SAMPLE_RATE, subtype="PCM_16")
        return name, len(wave), hashlib.sha1(raw).hexdigest()

    try:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            made = list(pool.map(make, range(len(plan))))
        dropped = dict(dropped_voices or {})
        copies = _identical_clips(plan, made)
        for voice, reason in copies.items():
            logger.warning("espeak-ng voice %s dropped: %s", voice, reason)
        dropped.update(copies)
        rows: list[Any] = []
        clips: dict[str, Any] = {}
        voices: dict[str, Any] = {}
        for clip, (name, frames, _) in zip(plan, made, strict=True):
            if clip.voice in copies:
                (temporary / name).unlink()
                continue
            rows.append({"path": name, **clip.target, "split": clip.split, "voice": clip.voice, "text": clip.text,
                         "speed": clip.speed, "pitch": clip.pitch, "frames": frames, "sample_rate": SAMPLE_RATE})
            clips[clip.split] = clips.get(clip.split, 0) + 1
            voices.setdefault(clip.split, [])
            if clip.voice not in voices[clip.split]:
                voices[clip.split].append(clip.voice)
        with (temporary / "manifest.jsonl").open("w", encoding="utf-8") as handle:
            handle.writelines(json.dumps(row, sort_keys=True) + "\n" for row in rows)
        info = {"params": params, "espeak": espeak_version(binary), "sample_rate": SAMPLE_RATE, "clips": clips,
                "voices": voices, "dropped_voices": dropped,
                "seconds": round(time.perf_counter() - started, 2),
                "hours_of_audio": round(sum(r["frames"] for r in rows) / SAMPLE_RATE / 3600, 4)}
        (temporary / "info.json").write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")  # written last
        _move_into_place(temporary, target)
    finally:
        torch.set_num_threads(threads)
        if temporary.exists():
            shutil.rmtree(temporary, ignore_errors=True)
    return read_info(target) or info


def _identical_clips(plan: Sequence[ClipPlan], made: Sequence[tuple[str, int, str]]) -> dict[str, str]:
    """Voices that produced a byte-identical clip (same words, speed, pitch) to an earlier voice."""
    owner: dict[str, str] = {}
    copies: dict[str, str] = {}
    for clip, (_, _, digest) in zip(plan, made, strict=True):
        first = owner.setdefault(digest, clip.voice)
        if first != clip.voice and clip.voice not in copies and first not in copies:
            copies[clip.voice] = f"a clip ({clip.text!r}) is byte-identical to voice {first!r}'s"
    return copies


def _move_into_place(temporary: Path, target: Path) -> None:
    if target.exists() and read_info(target) is None:  # a damaged folder (never one of ours): replace it
        shutil.rmtree(target, ignore_errors=True)
    try:
        os.rename(temporary, target)
    except OSError:
        if read_info(target) is None:  # not another process finishing first: a real failure
            raise


def read_info(target: Path) -> dict[str, Any] | None:
    """The cache's ``info.json`` when the folder is complete (manifest and info present), else None."""
    try:
        if not (target / "manifest.jsonl").is_file():
            return None
        return json.loads((target / "info.json").read_text())
    except (OSError, ValueError):
        return None

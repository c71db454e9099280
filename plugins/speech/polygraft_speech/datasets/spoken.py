"""Spoken digits generated with espeak-ng: ``spoken-digits`` (classes) and ``spoken-digit-strings`` (transcripts).

Built on first use into ``cache_dir("spoken-digits", <hash of the options>)`` (``$POLYGRAFT_CACHE``, else
``~/.cache/polygraft``) as 16 kHz mono WAVs with a ``manifest.jsonl`` and an ``info.json`` (voices per split,
dropped voices, espeak-ng version, timing). Later opens read the cache; changing any option builds a new one.

**Speaker-disjoint splits.** Whole voices are held out: the verified voices (see
:func:`~polygraft_speech.synth.verify_voices`; unknown or duplicate voices are dropped first) are shuffled with
``seed``; the first ``test_voices`` go to test, the next ``val_voices`` to val, the rest to train. With the
defaults (28 voices of :data:`~polygraft_speech.synth.DEFAULT_VOICES`, seed 0) that is

- test: ``en-gb-x-rp``, ``en+klatt``, ``en+f1``, ``en-us+f2``
- val: ``en-gb-x-gbcwmd``, ``en-us``, ``en+m1``, ``en-us+linda``
- train: the other 20 voices.

``spoken-digits`` renders every digit word ("zero".."nine") per voice at every speed x pitch (defaults 3 x 4):
2,400 train, 480 val and 480 test clips. ``spoken-digit-strings`` renders ``clips_per_voice`` random strings
of 2-5 digits per voice (transcripts such as "three one four"), each at a random speed and pitch from the lists.

Example:
    >>> import polygraft, tempfile
    >>> tiny = dict(voices=["en-us", "en+f3", "en-029"], speeds=[160], pitches=[50], val_voices=1, test_voices=1,
    ...             cache_dir=tempfile.mkdtemp())
    >>> train = polygraft.load_dataset("spoken-digits", split="train", **tiny)
    >>> len(train), train.label_names[:3], train[0]["sample_rate"]
    (10, ['zero', 'one', 'two'], 16000)
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from polygraft.assets import cache_dir as polygraft_cache_dir
from polygraft.errors import ConfigError, DataError
from polygraft.fingerprint import digest
from polygraft.interfaces import check_split, take_split
from polygraft_speech.datasets.source import AudioFileSource, AudioRecord, check_long_options
from polygraft_speech.synth import DEFAULT_VOICES, ClipPlan, espeak_binary, generate, read_info, verify_voices

FORMAT_VERSION = 1
DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
DEFAULT_SPEEDS = (130, 165, 200)
DEFAULT_PITCHES = (30, 45, 60, 75)


class SpokenSource(AudioFileSource):
    """An :class:`AudioFileSource` over a generated cache; ``voices`` are this split's voices, ``info`` the
    cache's ``info.json`` (voices per split, dropped voices, generation time)."""

    voices: list[str]
    info: dict[str, Any]
    folder: Path


def split_voices(voices: Sequence[str], *, val_voices: int, test_voices: int, seed: int) -> dict[str, list[str]]:
    """Whole voices per split: shuffle with ``seed``; test first, then val, the rest train (deterministic)."""
    if len(set(voices)) != len(voices):
        raise ConfigError(f"voices are listed twice: {sorted({v for v in voices if list(voices).count(v) > 1})}")
    if val_voices < 0 or test_voices < 0 or val_voices + test_voices >= len(voices):
        raise ConfigError(f"{len(voices)} voices cannot hold out {val_voices} val + {test_voices} test voices and "
                          "keep one for training; list more voices or hold out fewer")
    order = list(voices)
    random.Random(seed).shuffle(order)
    parts = [("test", test_voices), ("val", val_voices), ("train", None)]
    return {part: take_split(order, part, parts, name="voices") if size != 0 else [] for part, size in parts}


def _cache_folder(name: str, params: dict[str, Any], cache_dir: str | None) -> Path:
    key = digest(params)[:12]
    return (Path(cache_dir) if cache_dir else polygraft_cache_dir(name)) / key


def _open(name: str, params: dict[str, Any], plan_for: Any, *, split: str, cache_dir: str | None,
          voices: Sequence[str], val_voices: int, test_voices: int, seed: int, label_names: list[str] | None,
          max_duration: float | None, on_long: str) -> SpokenSource:
    check_long_options(max_duration, on_long)
    check_split(split, name=name)
    split_voices(voices, val_voices=val_voices, test_voices=test_voices, seed=seed)  # check the counts early
    folder = _cache_folder(name, params, cache_dir)
    info = read_info(folder)
    if info is None:
        kept, dropped = verify_voices(espeak_binary(), voices)
        if len(kept) < len(voices):
            _enough_voices(name, kept, dropped, val_voices, test_voices)
        assignment = split_voices(kept, val_voices=val_voices, test_voices=test_voices, seed=seed)
        plan = [clip for part, members in assignment.items() for voice in members
                for clip in plan_for(voice, part)]
        info = generate(folder, plan, params=params, dropped_voices=dropped)
    for part, count in (("val", val_voices), ("test", test_voices), ("train", 1)):
        if count and not info["voices"].get(part):
            raise ConfigError(f"{name}: every {part} voice was dropped ({info['dropped_voices']}); list other "
                              f"voices (the cache in {folder} records why)")
    wanted = ("train", "val", "test") if split == "all" else (split,)
    records = []
    manifest = folder / "manifest.jsonl"
    with manifest.open(encoding="utf-8") as handle:
        for text in handle:
            row = json.loads(text)
            if row["split"] not in wanted:
                continue
            target = {key: row[key] for key in ("label", "transcript") if key in row}
            path = folder / row["path"]
            record = AudioRecord(path, target, str(path), frames=int(row["frames"]),
                                 sample_rate=int(row["sample_rate"]), channels=1, extra={"voice": row["voice"]})
            records.append(record)
    if not records:
        raise DataError(f"the generated cache holds no {split} clips; delete the folder to rebuild it",
                        path=manifest)
    source = SpokenSource(records, label_names=label_names, name=name, max_duration=max_duration, on_long=on_long,
                          probe=False)
    source.voices = [v for part in wanted for v in info["voices"].get(part, [])]
    source.info, source.folder = info, folder
    return source


def _enough_voices(name: str, kept: list[str], dropped: dict[str, str], val_voices: int, test_voices: int) -> None:
    if len(kept) <= val_voices + test_voices:
        raise ConfigError(f"{name}: only {len(kept)} voices are usable ({kept}), too few to hold out {val_voices} "
                          f"val + {test_voices} test voices; dropped: {dropped}")


def _lists(voices: Sequence[str] | None, speeds: Sequence[int] | None,
           pitches: Sequence[int] | None) -> tuple[list[str], list[int], list[int]]:
    voice_list = list(voices) if voices is not None else list(DEFAULT_VOICES)
    speed_list = [int(s) for s in (speeds if speeds is not None else DEFAULT_SPEEDS)]
    pitch_list = [int(p) for p in (pitches if pitches is not None else DEFAULT_PITCHES)]
    if not voice_list or not speed_list or not pitch_list:
        raise ConfigError("voices, speeds and pitches must each list at least one value")
    if any(not 80 <= s <= 450 for s in speed_list):
        raise ConfigError(f"speeds are words per minute between 80 and 450, got {speed_list}")
    if any(not 0 <= p <= 99 for p in pitch_list):
        raise ConfigError(f"pitches are between 0 and 99, got {pitch_list}")
    return voice_list, speed_list, pitch_list


def create_spoken_digits(*, split: str = "train", voices: list[str] | None = None, speeds: list[int] | None = None,
                         pitches: list[int] | None = None, val_voices: int = 4, test_voices: int = 4,
                         seed: int = 0, cache_dir: str | None = None, max_duration: float | None = None,
                         on_long: str = "crop") -> SpokenSource:
    """Dataset ``spoken-digits``: the ten digit words as class labels ("zero".."nine"), speaker-disjoint splits.

    Args:
        split: ``train``, ``val``, ``test`` or ``all``.
        voices: espeak-ng voices (default: the 28 of ``DEFAULT_VOICES``); unverifiable ones are dropped.
        speeds: words per minute; pitches: 0-99. Every digit is spoken at every speed x pitch per voice.
        val_voices, test_voices: how many whole voices are held out for val and test.
        seed: which voices are held out.
        cache_dir: where to build the cache (default ``cache_dir("spoken-digits")``).
        max_duration, on_long: as for every audio dataset (clips last about 0.3-0.9 s).
    """
    voice_list, speed_list, pitch_list = _lists(voices, speeds, pitches)
    params = {"dataset": "spoken-digits", "voices": voice_list, "speeds": speed_list, "pitches": pitch_list,
              "val_voices": val_voices, "test_voices": test_voices, "seed": seed, "format": FORMAT_VERSION}

    def plan_for(voice: str, part: str) -> list[ClipPlan]:
        return [ClipPlan(word, voice, speed, pitch, part, {"label": word})
                for word in DIGITS for speed in speed_list for pitch in pitch_list]

    return _open("spoken-digits", params, plan_for, split=split, cache_dir=cache_dir, voices=voice_list,
                 val_voices=val_voices, test_voices=test_voices, seed=seed, label_names=list(DIGITS),
                 max_duration=max_duration, on_long=on_long)


def create_spoken_digit_strings(*, split: str = "train", voices: list[str] | None = None,
                                speeds: list[int] | None = None, pitches: list[int] | None = None,
                                clips_per_voice: int = 120, min_digits: int = 2, max_digits: int = 5,
                                val_voices: int = 4, test_voices: int = 4, seed: int = 0,
                                cache_dir: str | None = None, max_duration: float | None = None,
                                on_long: str = "crop") -> SpokenSource:
    """Dataset ``spoken-digit-strings``: transcripts of ``min_digits``-``max_digits`` digit words ("three one
    four") for CTC, ``clips_per_voice`` per voice at random speeds and pitches; speaker-disjoint splits.

    Args are those of ``spoken-digits`` plus ``clips_per_voice``, ``min_digits`` and ``max_digits``.
    """
    voice_list, speed_list, pitch_list = _lists(voices, speeds, pitches)
    if clips_per_voice < 1 or not 1 <= min_digits <= max_digits:
        raise ConfigError(f"need clips_per_voice >= 1 and 1 <= min_digits <= max_digits, got {clips_per_voice}, "
                          f"{min_digits}, {max_digits}")
    params = {"dataset": "spoken-digit-strings", "voices": voice_list, "speeds": speed_list, "pitches": pitch_list,
              "clips_per_voice": clips_per_voice, "min_digits": min_digits, "max_digits": max_digits,
              "val_voices": val_voices, "test_voices": test_voices, "seed": seed, "format": FORMAT_VERSION}

    def plan_for(voice: str, part: str) -> list[ClipPlan]:
        rng = random.Random(f"{seed}:{voice}")
        plan = []
        for _ in range(clips_per_voice):
            words = " ".join(rng.choice(DIGITS) for _ in range(rng.randint(min_digits, max_digits)))
            plan.append(ClipPlan(words, voice, rng.choice(speed_list), rng.choice(pitch_list), part,
                                 {"transcript": words}))
        return plan

    return _open("spoken-digit-strings", params, plan_for, split=split, cache_dir=cache_dir, voices=voice_list,
                 val_voices=val_voices, test_voices=test_voices, seed=seed, label_names=None,
                 max_duration=max_duration, on_long=on_long)


def create_spoken_speakers(*, split: str = "train", voices: list[str] | None = None, speeds: list[int] | None = None,
                           pitches: list[int] | None = None, val_voices: int = 4, test_voices: int = 4,
                           seed: int = 0, cache_dir: str | None = None, max_duration: float | None = None,
                           on_long: str = "crop") -> SpokenSource:
    """Dataset ``spoken-speakers``: the ``spoken-digits`` clips (the same cache) labelled by their voice, for speaker
    recognition and verification. The splits hold disjoint voices, so val and test speakers are never heard in
    training (an open set); ``label`` is the voice, ``digit`` the word spoken.

    Example:
        >>> import tempfile
        >>> tiny = dict(voices=["en-us", "en+f3", "en-029"], speeds=[160], pitches=[50], val_voices=1,
        ...             test_voices=1, cache_dir=tempfile.mkdtemp())
        >>> train = create_spoken_speakers(split="train", **tiny)
        >>> train[0]["label"] in train.label_names, sorted(set(train[0]) - {"audio", "_origin"})
        (True, ['digit', 'label', 'sample_rate'])
    """
    source = create_spoken_digits(split=split, voices=voices, speeds=speeds, pitches=pitches, val_voices=val_voices,
                                  test_voices=test_voices, seed=seed, cache_dir=cache_dir, max_duration=max_duration,
                                  on_long=on_long)
    for record in source.records:
        record.target = {"label": record.extra["voice"], "digit": record.target["label"]}
    source.label_names = sorted({record.extra["voice"] for record in source.records})
    source.name = "spoken-speakers"
    return source

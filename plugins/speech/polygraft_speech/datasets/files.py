"""Audio datasets from files: class folders (``audio-folder``) and CSV / JSONL manifests (``audio-manifest``).

``audio-folder`` reads ``path/<class>/<clip>`` or, when split sub-folders exist, ``path/<split>/<class>/<clip>``
(``val`` also finds ``validation``, ``valid`` or ``dev``). ``audio-manifest`` reads a CSV, TSV or JSONL file
with a path column and a ``label`` and/or ``transcript`` column (names configurable); paths are relative to
the manifest's folder (or ``root``). A bad row or file raises :class:`DataError` naming the file and row, or
is skipped and counted with ``skip_invalid: true``. See :class:`~polygraft_speech.datasets.source.AudioFileSource`
for ``max_duration`` / ``on_long``.

Example:
    >>> import tempfile, pathlib, numpy as np, soundfile, polygraft
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> soundfile.write(root / "a.wav", np.zeros(1600, dtype=np.float32), 16000)
    >>> _ = (root / "list.csv").write_text("path,transcript\\na.wav,three one\\n")
    >>> source = polygraft.load_dataset("audio-manifest", path=str(root / "list.csv"))
    >>> source[0]["transcript"], source[0]["_origin"].endswith("list.csv:2")
    ('three one', True)
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from polygraft.errors import DataError
from polygraft.interfaces import check_split
from polygraft_speech.audio import AUDIO_EXTENSIONS
from polygraft_speech.datasets.source import AudioFileSource, AudioRecord, check_long_options

SPLIT_FOLDERS = {"train": ("train",), "val": ("val", "validation", "valid", "dev"), "test": ("test",)}


def _check_split(split: str | None) -> str:
    return check_split(split or "all", name="audio dataset")


def create_audio_folder(*, path: str, split: str | None = None, skip_invalid: bool = False,
                        max_duration: float | None = None, on_long: str = "crop") -> AudioFileSource:
    """Dataset ``audio-folder``: ``path/<class>/<clip>``, or ``path/<split>/<class>/<clip>``.

    Args:
        path: the root folder.
        split: ``train`` / ``val`` / ``test`` pick a split sub-folder (required for val/test); ``all`` (or
            none) reads every split folder, or the class folders directly when there are no split folders.
        skip_invalid: skip and count unreadable clips instead of raising.
        max_duration: longest clip in seconds; ``on_long``: ``crop`` (counted) or ``refuse``.
    """
    check_long_options(max_duration, on_long)
    split = _check_split(split)
    root = Path(path)
    if not root.is_dir():
        raise DataError("audio folder does not exist", path=root)
    split_dirs = {name: next((root / f for f in folders if (root / f).is_dir()), None)
                  for name, folders in SPLIT_FOLDERS.items()}
    present = {name: folder for name, folder in split_dirs.items() if folder is not None}
    if present:
        if split == "all":
            roots = list(present.values())
        elif split in present:
            roots = [present[split]]
        else:
            raise DataError(f"no {split!r} split here (found split folders {sorted(present)}); expected "
                            f"{'/'.join(SPLIT_FOLDERS[split])}/<class>/<clip>", path=root)
        class_roots = list(present.values())  # label names agree across splits
    else:
        if split in ("val", "test"):
            raise DataError(f"split {split!r} needs a sub-folder {split}/<class>/<clip> (this folder holds class "
                            "folders only); open split 'all' and split it, or add train/ val/ test/ folders",
                            path=root)
        roots = class_roots = [root]
    classes = sorted({p.name for folder in class_roots for p in folder.iterdir()
                      if p.is_dir() and not p.name.startswith(".")})
    if not classes:
        raise DataError("no class sub-folders found (expected path/<class>/<clip> or path/<split>/<class>/<clip>)",
                        path=root)
    records, ignored, first_ignored = [], 0, None
    for folder in roots:
        for label in classes:
            for file in sorted((folder / label).rglob("*")) if (folder / label).is_dir() else []:
                if file.name.startswith(".") or file.is_dir():
                    continue
                if file.suffix.lower() not in AUDIO_EXTENSIONS:
                    ignored += 1
                    first_ignored = first_ignored or file
                    continue
                records.append(AudioRecord(file, {"label": label}, str(file)))
    source = AudioFileSource(records, label_names=classes, name="audio-folder", skip_invalid=skip_invalid,
                             max_duration=max_duration, on_long=on_long)
    if ignored:
        source.skip("file without an audio extension", first_ignored, count=ignored)
    return source


def _rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line, row)`` pairs of a CSV / TSV (header on line 1) or JSONL manifest."""
    try:
        handle = path.open(newline="", encoding="utf-8")
    except FileNotFoundError as exc:
        raise DataError("manifest file does not exist", path=path) from exc
    except OSError as exc:
        raise DataError(f"cannot read manifest: {exc}", path=path) from exc
    with handle:
        try:
            if path.suffix.lower() in (".jsonl", ".json", ".ndjson"):
                for line_number, line in enumerate(handle, start=1):
                    if not line.strip():
                        continue
                    try:
                        row = json.loads(line)
                    except json.JSONDecodeError as exc:
                        raise DataError(f"invalid JSON: {exc.msg}", path=path, line=line_number) from exc
                    if not isinstance(row, dict):
                        raise DataError(f"each line must be a JSON object, got {type(row).__name__}",
                                        path=path, line=line_number)
                    yield line_number, row
                return
            reader = csv.DictReader(handle, delimiter="\t" if path.suffix.lower() == ".tsv" else ",")
            if not reader.fieldnames:
                return  # no header line: an empty manifest
            yield 1, {"__header__": reader.fieldnames}
            for row in reader:
                yield reader.line_num, row
        except UnicodeDecodeError as exc:
            raise DataError(f"manifest is not UTF-8 text: {exc}", path=path) from exc
        except csv.Error as exc:
            raise DataError(f"malformed CSV: {exc}", path=path) from exc


def create_audio_manifest(*, path: str, split: str | None = None, audio_column: str = "path",
                          label_column: str = "label", transcript_column: str = "transcript",
                          split_column: str = "split", root: str | None = None, skip_invalid: bool = False,
                          max_duration: float | None = None, on_long: str = "crop") -> AudioFileSource:
    """Dataset ``audio-manifest``: a CSV / TSV / JSONL list of clips.

    Args:
        path: the manifest (``.csv``, ``.tsv``, ``.jsonl``).
        split: with a ``split_column`` in the manifest, keep rows of that split (``all`` keeps every row);
            without one, the manifest is one split (give one manifest per split).
        audio_column: the column holding clip paths (relative to ``root``, by default the manifest's folder).
        label_column, transcript_column: target columns; at least one must exist. A class label gives
            ``{"label": ...}``, a transcript ``{"transcript": ...}`` (CTC).
        skip_invalid: skip and count bad rows and files instead of raising.
        max_duration: longest clip in seconds; ``on_long``: ``crop`` (counted) or ``refuse``.
    """
    check_long_options(max_duration, on_long)
    split = _check_split(split)
    manifest = Path(path)
    base = Path(root) if root else manifest.parent
    records: list[AudioRecord] = []
    bad: list[tuple[str, str]] = []
    columns: list[str] | None = None
    targets: list[str] = []
    for line, row in _rows(manifest):
        if "__header__" in row:
            columns = list(row["__header__"])
            targets = _target_columns(columns, manifest, line, audio_column, label_column, transcript_column)
            continue
        if columns is None:  # JSONL: the first object decides the columns
            columns = list(row)
            targets = _target_columns(columns, manifest, line, audio_column, label_column, transcript_column)
        where = f"{manifest}:{line}"
        if split != "all" and split_column in row and str(row[split_column]).strip() != split:
            continue
        value = row.get(audio_column)
        target = {("label" if c == label_column else "transcript"): row.get(c) for c in targets}
        empty = [name for name, v in ((audio_column, value), *((c, row.get(c)) for c in targets))
                 if v is None or (isinstance(v, str) and not v.strip())]
        if empty or not isinstance(value, str):
            problem = f"empty or missing {empty}" if empty else f"{audio_column!r} must be a string path"
            if not skip_invalid:
                raise DataError(f"{problem} (pass skip_invalid=true to skip and count bad rows)", path=manifest,
                                line=line)
            bad.append(("empty or missing value in a manifest row", where))
            continue
        target = {key: str(v).strip() for key, v in target.items()}
        records.append(AudioRecord(base / value.strip(), target, where))
    if columns is None:
        raise DataError("manifest is empty (no header, no rows)", path=manifest)
    if not records and not bad:
        which = "" if split == "all" else f" for split {split!r} (column {split_column!r})"
        raise DataError(f"manifest has a header but no rows{which}", path=manifest)
    labels = sorted({r.target["label"] for r in records}) if label_column in targets else None
    source = AudioFileSource(records, label_names=labels, name="audio-manifest", skip_invalid=skip_invalid,
                             max_duration=max_duration, on_long=on_long)
    for reason, where in bad:
        source.skip(reason, where)
    return source


def _target_columns(columns: list[str], manifest: Path, line: int, audio_column: str, label_column: str,
                    transcript_column: str) -> list[str]:
    if audio_column not in columns:
        raise DataError(f"column {audio_column!r} is missing; columns are {columns} (set audio_column=...)",
                        path=manifest, line=line)
    found = [c for c in (label_column, transcript_column) if c in columns]
    if not found:
        raise DataError(f"needs a {label_column!r} or {transcript_column!r} column; columns are {columns} "
                        "(set label_column=... or transcript_column=...)", path=manifest, line=line)
    return found

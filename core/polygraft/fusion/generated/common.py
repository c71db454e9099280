"""What the generated sets share: a cache folder keyed by their options, built once (atomically), and opening a
split as a ``multimodal-manifest`` with a chosen subset of its fields.

Example:
    >>> from polygraft.fusion.generated.common import choose_fields
    >>> choose_fields({"image": "image", "caption": "text"}, ["image"], name="x")
    {'image': 'image', 'caption': None}
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from polygraft.assets import cache_dir as polygraft_cache
from polygraft.errors import ConfigError
from polygraft.fingerprint import digest
from polygraft.fusion.manifest import MultimodalManifest
from polygraft.options import closest

GENERATED_SPLITS = ("train", "val", "test")
DONE = "info.json"


def cache_folder(name: str, params: Mapping[str, Any], cache_dir: str | None) -> Path:
    """``<cache>/<name>/<hash of params>`` (``$POLYGRAFT_CACHE``, else ``~/.cache/polygraft``)."""
    root = Path(cache_dir) if cache_dir else polygraft_cache(name)
    return root / digest(dict(params))[:12]


def build_once(folder: Path, params: Mapping[str, Any], write: Callable[[Path], dict[str, Any]]) -> dict[str, Any]:
    """Run ``write(tmp)`` into a temporary folder and move it into place, unless ``folder`` is built already;
    returns the folder's ``info.json`` (``params`` plus what ``write`` returned)."""
    done = folder / DONE
    if done.is_file():
        return dict(json.loads(done.read_text()))
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.with_name(f"{folder.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        info = {"params": dict(params), **write(tmp)}
        (tmp / DONE).write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
        try:
            tmp.rename(folder)
        except OSError:  # another process built it first
            if not done.is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dict(json.loads(done.read_text()))


def choose_fields(columns: Mapping[str, str], fields: Sequence[str] | None, *, name: str) -> dict[str, str | None]:
    """``columns`` with those not in ``fields`` set to ``None`` (left out); ``None`` keeps every column."""
    if fields is None:
        return dict(columns)
    for field in fields:
        if field not in columns:
            near = closest(str(field), list(columns), n=1)
            hint = f"; did you mean {near[0]!r}?" if near else ""
            raise ConfigError(f"{name}: no field {field!r}{hint} Fields: {list(columns)}")
    if not fields:
        raise ConfigError(f"{name}: fields must keep at least one of {list(columns)}")
    return {column: kind if column in fields else None for column, kind in columns.items()}


def open_split(folder: Path, split: str, columns: Mapping[str, str | None], *, name: str,
               label_names: Sequence[str] | None, label: str | list[str] = "label",
               skip_invalid: bool = False) -> MultimodalManifest:
    """Split ``split`` of a generated folder (``all``: every split) as a manifest source with fixed label order
    (``label_names``; ``None`` for labels that are not one class per example: numbers, label lists)."""
    from polygraft.interfaces import check_split

    check_split(split, name=name)
    source = MultimodalManifest(folder / "all.csv" if split == "all" else folder / f"{split}.csv", columns=columns,
                                label=label, skip_invalid=skip_invalid, validate="none", name=name)
    if label_names is not None:
        source.label_names = list(label_names)
    return source


def choose_label(label: str, choices: Sequence[str], *, name: str) -> str:
    """``label`` if it is one of ``choices``, else a ConfigError with the closest choice."""
    if label not in choices:
        near = closest(str(label), list(choices), n=1)
        hint = f"; did you mean {near[0]!r}?" if near else ""
        raise ConfigError(f"{name}: label must be one of {', '.join(choices)}, got {label!r}{hint}")
    return label


def write_manifest(path: Path, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """A CSV with ``header`` and ``rows`` (what ``multimodal-manifest`` reads)."""
    import csv

    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


__all__ = ["GENERATED_SPLITS", "build_once", "cache_folder", "choose_fields", "choose_label", "open_split",
           "write_manifest"]

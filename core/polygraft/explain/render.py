"""Write an :class:`~polygraft.explain.api.Explanation` where a person (HTML, PNG) and a script (JSON) read it.

* text (``tokens``): ``STEM-METHOD.html``, every word highlighted (green raises the score, red lowers it), one row
  per explained output, plus the JSON list of (word, score);
* images and spectrograms: ``STEM-METHOD.png``, the input as the model saw it and one overlay per output (boxes
  drawn for detection), and ``STEM-METHOD-maps.npz`` with the full maps;
* waveforms: the attribution per frame drawn over the clip's log-mel spectrogram;
* vectors: a bar chart; a fused model's modality contributions (kind ``modality``): one bar per branch.

Every kind also writes ``STEM-METHOD.json`` (what ``--json`` prints).

Example:
    >>> from polygraft.explain.render import file_stem
    >>> file_stem("photos/cat 1.jpg"), file_stem("a quietly devastating film")[:5]
    ('cat_1', 'text-')
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from polygraft.explain.api import Explanation


def file_stem(value: str) -> str:
    """A file-name stem for an input: a file path's stem, else ``text-<hash>``."""
    path = Path(value)
    looks_like_file = re.fullmatch(r"\.[A-Za-z0-9]{1,5}", path.suffix) and ("/" in value or path.exists())
    if len(value) < 240 and looks_like_file:
        return re.sub(r"[^A-Za-z0-9._-]+", "_", path.stem) or "input"
    return "text-" + hashlib.sha1(value.encode()).hexdigest()[:8]


def render(explanation: Explanation, directory: str | Path, *, stem: str | None = None) -> list[str]:
    """Write the files for ``explanation`` into ``directory``; returns their paths (also kept in ``.files``)."""
    from polygraft.explain.render_maps import draw_maps, draw_modalities, draw_vectors, draw_waveform
    from polygraft.explain.render_text import write_html

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    base = directory / f"{stem or file_stem(explanation.input)}-{explanation.method}"
    files: list[Path] = []
    kind = explanation.kind
    if explanation.attributions:
        if kind == "tokens":
            files.append(write_html(explanation, base.with_suffix(".html")))
        elif kind in ("image", "spectrogram", "grid"):
            files.append(draw_maps(explanation, base.with_suffix(".png")))
        elif kind == "waveform":
            files.append(draw_waveform(explanation, base.with_suffix(".png")))
        elif kind == "modality":
            files.append(draw_modalities(explanation, base.with_suffix(".png")))
        else:
            files.append(draw_vectors(explanation, base.with_suffix(".png")))
        if explanation.attributions[0].scores.ndim == 2:
            maps = base.with_name(base.name + "-maps.npz")
            arrays: dict[str, Any] = {f"map_{i}": a.scores for i, a in enumerate(explanation.attributions)}
            np.savez_compressed(maps, **arrays)
            files.append(maps)
    report = base.with_suffix(".json")
    explanation.files = [str(path) for path in [*files, report]]
    report.write_text(json.dumps(explanation.to_dict(), indent=2, default=str))
    return explanation.files

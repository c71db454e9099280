"""Plots a person reads: learning curves and confusion matrices (matplotlib, headless).

Example:
    >>> import tempfile, pathlib
    >>> from polygraft.plots import plot_curves
    >>> rows = [{"step": 1, "train/loss": 1.0}, {"step": 2, "train/loss": 0.5, "val/loss": 0.7}]
    >>> plot_curves(rows, pathlib.Path(tempfile.mkdtemp()) / "curves.png").name
    'curves.png'
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def plot_curves(rows: Iterable[Mapping[str, Any]], path: Path) -> Path:
    """One panel per metric family: losses together, then each validation metric against the step."""
    plt = _pyplot()
    series: dict[str, tuple[list[float], list[float]]] = {}
    for row in rows:
        step = row.get("step")
        for key, value in row.items():
            if key in ("step", "epoch", "time") or not isinstance(value, int | float) or step is None:
                continue
            if key.startswith("train/") and key not in ("train/loss",):
                continue
            xs, ys = series.setdefault(key, ([], []))
            xs.append(step)
            ys.append(value)
    losses = sorted(k for k in series if k.endswith("loss"))
    others = sorted(k for k in series if k not in losses)
    panels = ([losses] if losses else []) + [[k] for k in others]
    if not panels:
        panels = [[]]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 3.5), squeeze=False)
    for ax, keys in zip(axes[0], panels):
        for key in keys:
            xs, ys = series[key]
            ax.plot(xs, ys, marker="o" if len(xs) < 30 else None, label=key)
        ax.set_xlabel("step")
        ax.set_title(", ".join(keys) if len(keys) == 1 else "loss")
        ax.grid(alpha=0.3)
        if keys:
            ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_confusion_matrix(matrix: Any, labels: Sequence[str], path: Path) -> Path:
    """Counts with true labels on rows and predictions on columns."""
    plt = _pyplot()
    values = matrix.detach().cpu().numpy() if hasattr(matrix, "detach") else matrix
    size = max(3.0, 0.45 * len(labels) + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(values, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if len(labels) <= 20:
        for i in range(len(labels)):
            for j in range(len(labels)):
                ax.text(j, i, int(values[i][j]), ha="center", va="center", fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path

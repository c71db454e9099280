"""The comparison's reports: one table (printed and ``comparison.md``), ``comparison.json`` and a bar chart.

Each row is a variant: task, backbone, weights (or random init), strategy, the recipe's main metric (mean ± std
over seeds; the test split when the recipe has one, else val), trainable and total parameters, training wall
time, samples/s and peak memory (RSS on CPU, CUDA peak on GPU), from each run's ``results.json``.

Example:
    >>> from polygraft.compare_report import mean_std
    >>> mean_std([0.8, 0.9])
    (0.85, 0.0707)
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from polygraft.run import RunDirectory


@dataclass(frozen=True)
class Variant:
    """One recipe with overrides, trained once per seed."""

    name: str
    recipe: str
    overrides: tuple[str, ...] = ()


@dataclass
class Outcome:
    """One trained (or reused) run of a variant and seed."""

    variant: Variant
    seed: int
    run_dir: Path
    status: str = "trained"  # trained | reused | resumed | failed
    results: dict[str, Any] = field(default_factory=dict)
    error: str = ""  # why a failed run failed (exit status and its error line)
    note: str = ""  # what to know about a finished run (it exited non-zero after writing its results)


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for one value), rounded to 4 places."""
    mean = statistics.fmean(values)
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return round(mean, 4), round(std, 4)


def _main_metric(config: dict[str, Any], results: dict[str, Any]) -> str | None:
    from polygraft.plugins import build_catalog

    kind, name = ("task", config.get("task")) if config.get("task") else ("objective", config.get("objective"))
    try:
        metric = getattr(build_catalog().get(kind, name), "metric", "loss")
    except Exception:
        metric = "loss"
    for split in ("test", "val"):
        if f"{split}/{metric}" in results:
            return f"{split}/{metric}"
    return None


def _describe(config: dict[str, Any]) -> dict[str, str]:
    strategies = [s if isinstance(s, str) else s.get("name", "?") for s in config.get("strategy") or []]
    options = config.get("backbone_options") or {}
    # a composed backbone names its inner weights in an option (the spectrogram backbone's image_weights)
    inner = next((f"{key}={value}" for key, value in sorted(options.items())
                  if key.endswith("weights") and isinstance(value, str) and value), None)
    weights = config.get("weights") or inner or "random init"
    return {"task": config.get("task") or f"pretrain: {config.get('objective')}", "backbone": config.get("backbone", "?"),
            "weights": str(weights), "strategy": "+".join(strategies) if config.get("task") else "-"}


def summarise(outcomes: Sequence[Outcome], *, seeds: Sequence[int]) -> dict[str, Any]:
    """Group outcomes by variant and compute the columns (see the module docstring)."""
    rows: list[dict[str, Any]] = []
    for name in dict.fromkeys(outcome.variant.name for outcome in outcomes):
        runs = [o for o in outcomes if o.variant.name == name]
        done = [o for o in runs if o.status != "failed"]
        row: dict[str, Any] = {"variant": name, "recipe": runs[0].variant.recipe,
                               "overrides": list(runs[0].variant.overrides),
                               "runs": [{"seed": o.seed, "status": o.status, "run_dir": str(o.run_dir),
                                         "error": o.error, "note": o.note} for o in runs]}
        if done:
            config = RunDirectory(done[0].run_dir, enabled=False).read_config()
            row.update(_describe(config))
            metric = _main_metric(config, done[0].results)
            row["metric"] = metric
            values = [o.results[metric] for o in done if metric and metric in o.results]
            if values:
                row["value"], row["std"] = mean_std(values)
                row["values"] = values
            for key in ("params/trainable", "params/total", "train/wall_time_s", "train/samples_per_s",
                        "memory/peak_mb"):
                numbers = [o.results[key] for o in done if isinstance(o.results.get(key), int | float)]
                if numbers:
                    row[key] = round(statistics.fmean(numbers), 2)
        rows.append(row)
    return {"seeds": list(seeds), "variants": rows}


def _cell(row: dict[str, Any]) -> str:
    if "value" not in row:
        return "failed" if any(r["status"] == "failed" for r in row["runs"]) else "-"
    return f"{row['value']:.4f}" + (f" ± {row['std']:.4f}" if len(row.get("values", [])) > 1 else "")


def table_rows(comparison: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    headers = ["variant", "task", "backbone", "weights", "strategy", "metric", "value", "trainable", "total",
               "train s", "samples/s", "peak MB"]
    rows = []
    for row in comparison["variants"]:
        def number(key: str, fmt: str = "{:,.0f}", row: dict[str, Any] = row) -> str:
            return fmt.format(row[key]) if key in row else "-"

        rows.append([row["variant"], row.get("task", "-"), row.get("backbone", "-"), row.get("weights", "-"),
                     row.get("strategy", "-"), row.get("metric") or "-", _cell(row), number("params/trainable"),
                     number("params/total"), number("train/wall_time_s", "{:.1f}"),
                     number("train/samples_per_s", "{:.1f}"), number("memory/peak_mb", "{:.0f}")])
    return headers, rows


def render_text(comparison: dict[str, Any]) -> str:
    """A plain-text table for the terminal."""
    headers, rows = table_rows(comparison)
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows)]
    lines = ["  ".join(str(cell).ljust(width) for cell, width in zip(line, widths)).rstrip()
             for line in [headers, ["-" * w for w in widths], *rows]]
    failures = [f"{row['variant']} seed {run['seed']}: {run['error']}" for row in comparison["variants"]
                for run in row["runs"] if run["status"] == "failed"]
    seeds = ", ".join(str(s) for s in comparison["seeds"])
    return "\n".join([*lines, f"seeds: {seeds} (value: mean ± std over seeds)", *(f"failed: {f}" for f in failures)])


def render_markdown(comparison: dict[str, Any]) -> str:
    headers, rows = table_rows(comparison)
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    seeds = ", ".join(str(s) for s in comparison["seeds"])
    return "\n".join([*lines, "", f"Seeds: {seeds}; value is the mean ± standard deviation over seeds."]) + "\n"


def short_labels(names: list[str]) -> list[str]:
    """Variant names for a chart: the recipe stem they all share and ``*_options.`` prefixes left out, wrapped.

    >>> short_labels(["digits.backbone_options.image_weights=x", "digits.backbone_options.image_weights=null"])
    ['image_weights=x', 'image_weights=null']
    """
    import re
    import textwrap

    parts = [name.split(".") for name in names]
    shared = 0  # leading dotted parts every name has, each name keeping at least one part
    while parts and all(len(p) > shared + 1 and p[shared] == parts[0][shared] for p in parts):
        shared += 1
    short = [re.sub(r"\b\w+_options\.", "", ".".join(p[shared:])) for p in parts]
    return [textwrap.fill(label, 34) for label in short]


def plot(comparison: dict[str, Any], path: Path) -> Path:
    """Horizontal bars of the main metric (with its spread) and, beside them, the training time of each variant."""
    from polygraft.plots import _pyplot

    plt = _pyplot()
    rows = [row for row in comparison["variants"] if "value" in row]
    labels = short_labels([r["variant"] for r in rows])
    height = 1.2 + 0.45 * sum(label.count("\n") + 1 for label in labels)
    fig, (metric_ax, time_ax) = plt.subplots(1, 2, sharey=True, figsize=(8.5, max(2.5, height)),
                                             gridspec_kw={"width_ratios": [3, 2]})
    positions = list(range(len(rows)))
    metric = " / ".join(dict.fromkeys(str(r["metric"]) for r in rows)) or "metric"  # each recipe's main metric
    metric_ax.barh(positions, [r["value"] for r in rows], xerr=[r["std"] for r in rows], color="#4363d8")
    for position, row in zip(positions, rows):
        metric_ax.text(row["value"], position, f" {row['value']:.3f}", va="center", fontsize=8)
    metric_ax.set_xlabel(metric)
    metric_ax.set_yticks(positions, labels, fontsize=8)
    metric_ax.invert_yaxis()
    time_ax.barh(positions, [r.get("train/wall_time_s", math.nan) for r in rows], color="#f58231")
    time_ax.set_xlabel("train time (s)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def write_reports(comparison: dict[str, Any], output: Path) -> dict[str, Path]:
    """``comparison.md``, ``comparison.json`` and ``comparison.png`` in ``output``."""
    files = {"markdown": output / "comparison.md", "json": output / "comparison.json", "plot": output / "comparison.png"}
    files["markdown"].write_text(render_markdown(comparison))
    files["json"].write_text(json.dumps(comparison, indent=2) + "\n")
    plot(comparison, files["plot"])
    return files

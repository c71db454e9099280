"""Measure whether a trained run's explanations pass the sanity checks (the numbers in examples/explain/README.md).

For each of the first ``--size`` examples of the run's test split (its recipe's ``data.test``) and each method:
completeness (Integrated Gradients), the pointing game (examples with a ``box``), the known keyword (examples
with a ``keyword_index``), deletion (top ``--fraction`` of units vs as many random units) and model
randomisation (rank correlation with the map of a copy whose backbone is re-initialised), plus the time of
each explanation. Prints a Markdown table (mean ± std over examples) and writes the raw rows as JSON.

    python examples/explain/sanity_checks.py runs/explain/shapes --methods gradcam,integrated-gradients,occlusion
    python examples/explain/sanity_checks.py runs/explain/keywords --methods integrated-gradients,occlusion
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np


def box_in_map(example: dict[str, Any], scores: np.ndarray, preprocessor: Any) -> list[float]:
    """The example's box in map cells (the recipe resizes whole images: no crop)."""
    width, height = preprocessor.extent(example)
    sx, sy = scores.shape[1] / width, scores.shape[0] / height
    x0, y0, x1, y1 = example["box"]
    return [x0 * sx, y0 * sy, x1 * sx, y1 * sy]


def check(task: Any, randomised: Any, example: dict[str, Any], method: str, *, fraction: float, seed: int,
          cells: list[int], tolerance: float) -> dict[str, Any]:
    from polygraft.explain import explain
    from polygraft.explain.checks import deletion, pointing_hit, rank_correlation

    start = time.perf_counter()
    result = explain(task, example, method=method)
    seconds = time.perf_counter() - start
    attribution = result.attributions[0]
    row: dict[str, Any] = {"seconds": seconds, "label": attribution.label,
                           "correct": attribution.label == example.get("label")}
    if attribution.completeness:
        row["relative_delta"] = attribution.completeness["relative_delta"]
        row["complete"] = attribution.completeness["within_tolerance"]
        row["steps"] = attribution.completeness["steps"]
    if "box" in example and attribution.scores.ndim == 2:
        box = box_in_map(example, attribution.scores, task.backbone.preprocessor)
        row["pointing"] = pointing_hit(attribution.scores, box)
        row["pointing_tolerant"] = pointing_hit(attribution.scores, box, tolerance=tolerance)
    if "frame" in attribution.info:  # CTC: does each character's map peak within 100 ms of where it was emitted?
        row["emission_peak"] = float(np.mean([peaks_near_emission(a, result.subject.hooks)
                                              for a in result.attributions]))
    if example.get("keyword_index") is not None:
        row["keyword_top"] = int(np.argmax(attribution.scores)) == example["keyword_index"]
    for cell in cells if attribution.scores.ndim == 2 else cells[:1]:
        drop = deletion(result, fraction=fraction, seed=seed, cell=cell)
        suffix = "" if cell == cells[0] else f"_cell{cell}"
        row.update({f"drop_top{suffix}": drop["drop_top"], f"drop_random{suffix}": drop["drop_random"]})
    if "frame" not in attribution.info:  # the randomised model emits other characters: nothing to compare
        other = explain(randomised, example, method=method, target=attribution.label).attributions[0].scores
        row["rank_correlation"] = rank_correlation(attribution.scores, other)
    return row


def peaks_near_emission(attribution: Any, hooks: Any, *, seconds: float = 0.1) -> bool:
    """Whether the time profile of one character's map peaks within ``seconds`` of the frame that emitted it."""
    profile = np.abs(attribution.scores).sum(0) if attribution.scores.ndim == 2 else np.abs(attribution.scores)
    per_unit = (hooks.seconds_per_step or 0.01) * (hooks.frame_size or 1)
    emitted = (attribution.info["frame"] + 0.5) * profile.shape[0] / attribution.info["frames"]
    return bool(abs(int(np.argmax(profile)) + 0.5 - emitted) * per_unit <= seconds)


def summarise(rows: list[dict[str, Any]], cells: list[int]) -> dict[str, str]:
    def stat(key: str, digits: int = 3) -> str:
        values = np.array([float(r[key]) for r in rows if key in r])
        if not values.size:
            return "—"
        undefined = int(np.isnan(values).sum())
        if undefined == values.size:
            return f"undefined ({undefined})"
        text = f"{np.nanmean(values):.{digits}f} ± {np.nanstd(values):.{digits}f}"
        return text + (f" ({undefined} undefined)" if undefined else "")

    def share(key: str) -> str:
        values = [bool(r[key]) for r in rows if key in r]
        return f"{np.mean(values):.1%} ({sum(values)}/{len(values)})" if values else "—"

    extra = {}
    for cell in cells[1:]:
        extra[f"deletion in {cell} px cells: top / random"] = (f"{stat(f'drop_top_cell{cell}')} / "
                                                               f"{stat(f'drop_random_cell{cell}')}")
    return {"n": str(len(rows)), "accuracy": share("correct"), "complete (≤5%)": share("complete"),
            "relative delta": stat("relative_delta", 4), "steps": stat("steps", 0), "pointing game": share("pointing"),
            "pointing (tolerance)": share("pointing_tolerant"),
            "keyword on top": share("keyword_top"),
            "CTC: peak ≤ 100 ms from emission": stat("emission_peak"), "deletion: top 20%": stat("drop_top"),
            "deletion: random 20%": stat("drop_random"), **extra, "rank corr. vs randomised": stat("rank_correlation"),
            "seconds / input": stat("seconds", 2)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir")
    parser.add_argument("--methods", default="integrated-gradients,occlusion")
    parser.add_argument("--size", type=int, default=100, help="test examples checked (default 100)")
    parser.add_argument("--split", default="test")
    parser.add_argument("--fraction", type=float, default=0.2)
    parser.add_argument("--cells", default="1", help="2-D maps: also delete in square cells of these sizes (pixels), "
                        "e.g. 1,16; the first is the main column")
    parser.add_argument("--tolerance", type=float, default=15.0, help="pointing game's tolerance in pixels of the "
                        "model's input (Zhang et al. 2016 count a hit within 15 px of the object, on ~224 px inputs)")
    parser.add_argument("--seed", type=int, default=0, help="seeds the random deletions and the re-initialisation")
    parser.add_argument("--output", help="JSON file for the raw rows (default RUN/sanity_checks.json)")
    args = parser.parse_args()

    import torch

    import polygraft
    from polygraft.explain.checks import randomised_copy
    from polygraft.recipe import Recipe, load_split
    from polygraft.run import RunDirectory

    torch.set_num_threads(1)
    cells = [int(c) for c in args.cells.split(",")]
    run = RunDirectory(args.run_dir, enabled=False)
    recipe = Recipe.from_dict(run.read_config(), where=str(run.config_file))
    catalog = polygraft.build_catalog()
    data = load_split(recipe, args.split, catalog)
    task = polygraft.load(run.path, catalog=catalog)
    randomised = randomised_copy(task, seed=args.seed)
    examples = [data[i] for i in range(min(args.size, len(data)))]
    report: dict[str, Any] = {"run": str(run.path), "split": args.split, "seed": args.seed, "fraction": args.fraction,
                              "cells": cells, "tolerance": args.tolerance, "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, "
                              f"1 thread, load {os.getloadavg()[0]:.1f}", "methods": {}}
    for method in args.methods.split(","):
        rows = [check(task, randomised, example, method, fraction=args.fraction, seed=args.seed + i, cells=cells,
                      tolerance=args.tolerance) for i, example in enumerate(examples)]
        report["methods"][method] = {"summary": summarise(rows, cells), "rows": rows}
    output = Path(args.output or run.path / "sanity_checks.json")
    output.write_text(json.dumps(report, indent=2))
    keys = list(next(iter(report["methods"].values()))["summary"])
    print(f"{run.path} ({args.split}, seed {args.seed}, {report['machine']})\n")
    print("| method | " + " | ".join(keys) + " |")
    print("|---" * (len(keys) + 1) + "|")
    for method, entry in report["methods"].items():
        print(f"| {method} | " + " | ".join(entry["summary"][k] for k in keys) + " |")
    print(f"\nwrote {output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""``polygraft tune`` against a grid on ``synthetic-classification``, where the good learning-rate band is known:
TPE with median pruning for ``--trials`` trials against a ``--trials``-point log grid of ``trainer.lr`` without
pruning. Reports each search's best validation accuracy and the optimizer steps it trained.

    python benchmarks/tune_vs_grid.py --trials 20 --output runs/tune_vs_grid [--json]

Both searches use the toy backbone (an MLP) on the same data, steps and seed; each trial is a child process, as
``polygraft tune`` runs them. The issue's target: TPE within 1 point of the grid's best with at most 60% of its
steps. Re-running with the same ``--output`` resumes both studies (nothing is trained twice).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import yaml

from polygraft.tune import Search, tune

RECIPE = {
    "task": "classification", "backbone": "toy", "backbone_options": {"in_features": 8, "hidden": 16},
    "data": {"train": {"dataset": "synthetic-classification", "size": 512, "noise": 1.0},
             "val": {"dataset": "synthetic-classification", "size": 1000, "noise": 1.0, "split": "val"}},
    "trainer": {"max_steps": 80, "batch_size": 32, "eval_every": 10, "log_every": 10, "schedule": "constant",
                "seed": 0},
}
SPACE = "trainer.lr=loguniform:1e-5:1"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default="runs/tune_vs_grid")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    recipe = output / "toy.yaml"
    recipe.write_text(yaml.safe_dump(RECIPE))
    searches = {
        "grid": Search(recipe=str(recipe), space=[SPACE], trials=args.trials, sampler="grid", pruner="none",
                       grid_points=args.trials, seed=args.seed),
        "tpe": Search(recipe=str(recipe), space=[SPACE], trials=args.trials, sampler="tpe", pruner="median",
                      seed=args.seed),
    }
    results = {}
    for name, search in searches.items():
        started = time.monotonic()
        report = tune(search, output / name, log=sys.stderr)
        results[name] = {"best": report["best"]["value"], "best_lr": report["best"]["params"]["trainer.lr"],
                         "steps": report["steps"]["total"], "counts": report["counts"],
                         "seconds": round(time.monotonic() - started, 1)}
    grid, tpe = results["grid"], results["tpe"]
    results["tpe_minus_grid_points"] = round(100 * (tpe["best"] - grid["best"]), 2)
    results["tpe_steps_share"] = round(tpe["steps"] / max(1, grid["steps"]), 3)
    if args.json:
        print(json.dumps(results, indent=2))
        return
    for name in ("grid", "tpe"):
        r = results[name]
        print(f"{name:>4}: best val/accuracy {r['best']:.4f} (lr {r['best_lr']:.3g}), {r['steps']:,} steps, "
              f"{r['counts']}, {r['seconds']} s")
    print(f"TPE - grid: {results['tpe_minus_grid_points']:+.2f} points with {results['tpe_steps_share']:.0%} of "
          "the grid's steps")


if __name__ == "__main__":
    main()

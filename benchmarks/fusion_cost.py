"""What fusing costs: one training step of a fused model against the sum of its branches' own training steps.

For each fusion recipe of examples/multimodal (its branches, as the recipe builds them, random-init), the
benchmark builds the fused classifier and, for each branch, a classifier on that branch's backbone alone, and times
one optimizer step (forward, loss, backward, AdamW step) of each on the same examples: the fused model on the
fused batch, each branch's model on the batch of that branch's fields. Steps are interleaved (fused, branch 1,
branch 2, fused...) so load on the machine hits all alike; the first ``--warmup`` rounds are left out; the median
process CPU time per step is the headline (one thread: it does not grow when other processes share the machine),
the median wall time is printed beside it. The last line is ``fused / sum of branches: X.XXX``: the issue asks for
at most 1.1.

Run (about a minute on 2 cores):
    .venv/bin/python benchmarks/fusion_cost.py                        # shape-captions branches, batch 32
    .venv/bin/python benchmarks/fusion_cost.py --recipe examples/multimodal/av_digits.yaml --rounds 20
    .venv/bin/python benchmarks/fusion_cost.py --json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

import torch

import polygraft
from polygraft.recipe import Recipe

ROOT = Path(__file__).resolve().parents[1]


def timed_step(task: Any, batch: dict[str, Any], optimizer: torch.optim.Optimizer) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of one training step."""
    cpu, wall = time.process_time(), time.perf_counter()
    optimizer.zero_grad(set_to_none=True)
    task(batch).loss.backward()
    optimizer.step()
    return time.process_time() - cpu, time.perf_counter() - wall


def build(recipe_path: Path, batch_size: int, cache: str | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """The fused task and one task per branch, each with its batch of the same examples."""
    recipe = Recipe.from_yaml(recipe_path)
    name, options = recipe.dataset_options("val")
    if cache:
        options["cache_dir"] = cache
    data = polygraft.load_dataset(name, **options)
    examples = [data[index] for index in range(batch_size)]
    torch.manual_seed(0)
    fused = polygraft.create_task("classification", backbone="fusion", label_names=data.label_names,
                                  backbone_options=recipe.backbone_options)
    tasks = {"fused": fused}
    batches = {"fused": fused.collate([fused.prepare_example(example) for example in examples])}
    for branch in fused.backbone.preprocessor.branches:
        config = fused.backbone.configs[[c.name for c in fused.backbone.configs].index(branch.name)]
        alone = polygraft.create_task("classification", backbone=config.backbone, label_names=data.label_names,
                                      backbone_options=config.backbone_options)
        rows = [{**branch.fields.extract(example), "label": example["label"]} for example in examples]
        tasks[branch.name] = alone
        batches[branch.name] = alone.collate([alone.prepare_example(row) for row in rows])
    return tasks, batches


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipe", default=str(ROOT / "examples" / "multimodal" / "shape_captions.yaml"))
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--cache-dir", default=None, help="where the generated data set lives (default: POLYGRAFT_CACHE)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    tasks, batches = build(Path(args.recipe), args.batch_size, args.cache_dir)
    optimizers = {name: torch.optim.AdamW(task.parameters(), lr=1e-4) for name, task in tasks.items()}
    for task in tasks.values():
        task.train()
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in tasks}
    for round_index in range(args.warmup + args.rounds):
        for name, task in tasks.items():
            measured = timed_step(task, batches[name], optimizers[name])
            if round_index >= args.warmup:
                times[name].append(measured)
    cpu = {name: statistics.median(t[0] for t in runs) * 1000 for name, runs in times.items()}
    wall = {name: statistics.median(t[1] for t in runs) * 1000 for name, runs in times.items()}
    branches = [name for name in tasks if name != "fused"]
    ratio = cpu["fused"] / sum(cpu[name] for name in branches)
    wall_ratio = wall["fused"] / sum(wall[name] for name in branches)
    report = {"recipe": str(args.recipe), "batch_size": args.batch_size, "rounds": args.rounds, "threads": args.threads,
              "cpu_ms": cpu, "wall_ms": wall, "ratio_cpu": ratio, "ratio_wall": wall_ratio,
              "parameters": {name: sum(p.numel() for p in task.parameters()) for name, task in tasks.items()},
              "load_before": load_before, "load_after": os.getloadavg()}
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"{Path(args.recipe).name}: batch {args.batch_size}, {args.rounds} rounds, {args.threads} thread(s)")
        print("| model | parameters | CPU ms/step (median) | wall ms/step (median) |\n|---|---|---|---|")
        for name in tasks:
            print(f"| {name} | {report['parameters'][name]:,} | {cpu[name]:.1f} | {wall[name]:.1f} |")
        print(f"load (1, 5, 15 min) before {load_before}, after {report['load_after']}")
        print(f"wall: fused / sum of branches: {wall_ratio:.3f}")
    print(f"fused / sum of branches: {ratio:.3f}")


if __name__ == "__main__":
    main()

"""Does the input pipeline keep the model fed? polygraft's example recipes against a plain PyTorch loop.

For each case, the same work runs twice, each in a fresh subprocess with the same number of threads:

* **polygraft**: the example recipe through ``polygraft.recipe.run_recipe`` (run directory, checkpoints, callbacks,
  as ``polygraft finetune`` does), progress bar off. The clock covers ``Trainer.fit``: preparing (and caching)
  the data, training, every validation, checkpoints, the saved model and the test evaluation.
* **plain**: a hand-written loop over examples prepared once in memory, on the same model (the recipe's task
  built with the same seed), data, batch size, optimizer (AdamW with polygraft's no-decay groups, fused), schedule,
  clipping, epochs and evaluations, with the same data order. The clock covers preparing the data and the loop.

Cases (sizes are flags, so a smoke run takes seconds):

* ``image``: ``examples/vision/digits.yaml`` (EfficientNet-Lite0 with ImageNet weights, 64 px, batch 64, 3 epochs)
  on MNIST-5k digits written as PNG files into an ``image-folder`` (4,000 train, 1,000 validation). The plain loop
  decodes every PNG once with Pillow, applies timm's eval transform (the recipe's settings) and indexes one
  stacked tensor, in polygraft's order (``randperm`` seeded by ``seed + epoch``).
* ``text``: ``examples/text/sentiment.yaml`` (MiniLM-L6, Rotten Tomatoes, length-grouped batches).
* ``audio``: ``examples/speech/spoken_digits.yaml`` (wav2vec2, spoken digits), when the speech plugin is installed.

For text and audio the plain loop prepares every example once with the recipe's pipeline (tokenising,
resampling) and pads each batch with its ``collate``, in polygraft's order (its length-grouped sampler); so the
comparison is the trainer and its input pipeline against none, on identical batches.

Printed per case: wall and process CPU time, the share of step time spent waiting for data (from the end of one
step, or the start of an epoch, to the start of the next step), the final training loss (mean of the last epoch)
and validation accuracy of both sides (they match when both really do the same work), the time ratio and the load.
The last line is ``polygraft/plain time ratio: X`` for the image case.

Usage:
    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/input_pipeline.py                     # all cases, full size
    .venv/bin/python benchmarks/input_pipeline.py --cases image --image-train 256 --image-val 64 --epochs 1
    .venv/bin/python benchmarks/input_pipeline.py --cases image --polygraft trainer.cache=false   # uncached
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
RECIPES = {"image": "examples/vision/digits.yaml", "text": "examples/text/sentiment.yaml",
           "audio": "examples/speech/spoken_digits.yaml"}


# ---------------------------------------------------------------------------------------------- data and recipe
def write_digits(folder: Path, train: int, val: int) -> Path:
    """MNIST-5k digits as PNG files: ``folder/train/<digit>/<n>.png`` and ``folder/test/...`` (kept if present)."""
    import polygraft

    marker = folder / f".done-{train}-{val}"
    if marker.exists():
        return folder
    for split, count in (("train", train), ("test", val)):
        source = polygraft.load_dataset("mnist-5k", split=split, seed=0)
        for index in range(min(count, len(source))):
            example = source[index]
            path = folder / split / example["label"] / f"{index:05d}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            example["image"].save(path)
    marker.touch()
    return folder


def recipe(case: str, args: argparse.Namespace) -> dict[str, Any]:
    raw = yaml.safe_load((ROOT / RECIPES[case]).read_text())
    raw["output_dir"] = str(Path(args.work_dir) / f"run-{case}")
    raw["trainer"]["progress"] = False
    if case == "image":
        folder = Path(args.work_dir) / "digits-png"
        raw["data"] = {"train": {"dataset": "image-folder", "path": str(folder), "split": "train"},
                       "val": {"dataset": "image-folder", "path": str(folder), "split": "test"}}
    elif case == "text":
        for ref in raw["data"].values():
            ref.update(train_size=args.text_train, test_size=args.text_test)
    if args.epochs is not None:
        raw["trainer"]["max_epochs"] = args.epochs
    return raw


# ---------------------------------------------------------------------------------------------- polygraft side
def run_polygraft(case: str, args: argparse.Namespace) -> dict[str, Any]:
    from polygraft.interfaces import Callback
    from polygraft.recipe import Recipe, run_recipe

    class Clock(Callback):
        """Data wait: from the end of a step (or the start of an epoch, or the end of a validation) to the start
        of the next step; step time: from that same mark to the step's end."""

        def __init__(self) -> None:
            self.mark, self.wait, self.step, self.losses = 0.0, 0.0, 0.0, []
            self.cpu_mark, self.cpu_step = 0.0, 0.0
            self.fit_start = self.validating = self.evaluation = 0.0
            self.fit_called = self.fit_called_cpu = self.prepare = 0.0

        def on_fit_start(self, trainer) -> None:
            self.fit_start = time.perf_counter()
            # the trainer's set-up (input cache, loaders) ran between fit() being called and here
            self.prepare = trainer.usage.setup_seconds
            self.fit_called = self.fit_start - self.prepare
            self.fit_called_cpu = time.process_time() - trainer.usage.setup_cpu_seconds

        def on_validation_start(self, trainer) -> None:
            self.validating = time.perf_counter()

        def on_train_epoch_start(self, trainer, epoch) -> None:
            self.mark, self.cpu_mark = time.perf_counter(), time.process_time()
            self.losses.append([])

        def on_train_step_start(self, trainer, step) -> None:
            self.wait += time.perf_counter() - self.mark

        def on_train_step_end(self, trainer, step, loss, batch, output) -> None:
            now, cpu = time.perf_counter(), time.process_time()
            self.step += now - self.mark
            self.cpu_step += cpu - self.cpu_mark
            self.mark, self.cpu_mark = now, cpu
            self.losses[-1].append(float(loss))

        def on_validation_end(self, trainer, metrics) -> None:
            self.mark, self.cpu_mark = time.perf_counter(), time.process_time()
            self.evaluation += self.mark - self.validating

    clock = Clock()
    result = run_recipe(Recipe.from_dict(recipe(case, args), overrides=args.polygraft), callbacks=[clock])
    # from the moment Trainer.fit was called (the recipe's data is opened before it, as the plain loop's is)
    timing = {"wall_s": time.perf_counter() - clock.fit_called, "cpu_s": time.process_time() - clock.fit_called_cpu,
              "prepare_s": clock.prepare}
    return {**timing, "wait_share": clock.wait / max(clock.step, 1e-9), "steps": sum(map(len, clock.losses)),
            "train_s": clock.step, "train_cpu_s": clock.cpu_step, "eval_s": clock.evaluation,
            "final_loss": statistics.fmean(clock.losses[-1]), "val_accuracy": _last(result.history, "val/accuracy"),
            "losses": [loss for epoch in clock.losses for loss in epoch]}


def _last(history: list[dict[str, Any]], key: str) -> float:
    values = [row[key] for row in history if key in row]
    return values[-1] if values else float("nan")


# ---------------------------------------------------------------------------------------------- plain side
def build_task(raw: dict[str, Any], label_names: list[str]) -> Any:
    import torch

    import polygraft

    torch.manual_seed(raw["trainer"].get("seed", 0))  # as run_recipe: the seed fixes the head's initial weights
    return polygraft.create_task(raw["task"], backbone=raw["backbone"], weights=raw.get("weights"),
                                 label_names=label_names, backbone_options=raw.get("backbone_options") or {},
                                 **(raw.get("task_options") or {}))


def image_inputs(raw: dict[str, Any], task: Any) -> dict[str, Any]:
    """Decode every PNG once (Pillow) and apply timm's eval transform: one stacked tensor per split."""
    import torch
    from PIL import Image
    from timm.data import create_transform

    settings = task.backbone.preprocessor.describe()
    transform = create_transform(tuple(settings["input_size"]), is_training=False,
                                 interpolation=settings["interpolation"], mean=settings["mean"], std=settings["std"],
                                 crop_pct=settings["crop_pct"], crop_mode=settings["crop_mode"])
    splits = {}
    for split, ref in raw["data"].items():
        files = sorted((Path(ref["path"]) / ref["split"]).glob("*/*.png"))
        pixels = torch.stack([transform(Image.open(f).convert("RGB")) for f in files])
        labels = torch.tensor([task.label_names.index(f.parent.name) for f in files])
        splits[split] = (pixels, labels)

    def batch(split: str, indices: list[int]) -> dict[str, Any]:
        pixels, labels = splits[split]
        index = torch.tensor(indices)
        return {"inputs": {"pixel_values": pixels[index]}, "labels": labels[index], "meta": {}}

    return {"sizes": {s: len(v[1]) for s, v in splits.items()}, "batch": batch, "lengths": {}}


def pipeline_inputs(raw: dict[str, Any], task: Any, sources: dict[str, Any]) -> dict[str, Any]:
    """Every example prepared once with the recipe's pipeline; each batch padded by its ``collate``."""
    pipeline = task.data_pipeline(training=False)
    prepared = {split: [pipeline.prepare(source[i]) for i in range(len(source))] for split, source in sources.items()}
    lengths = {split: pipeline.lengths(source) for split, source in sources.items()}

    def batch(split: str, indices: list[int]) -> dict[str, Any]:
        return pipeline.collate([prepared[split][i] for i in indices])

    return {"sizes": {s: len(v) for s, v in prepared.items()}, "batch": batch, "lengths": lengths}


def run_plain(case: str, args: argparse.Namespace) -> dict[str, Any]:
    import torch

    import polygraft
    from polygraft.inputs.samplers import LengthGroupedSampler

    raw = recipe(case, args)
    cfg = polygraft.TrainerConfig(**raw["trainer"])
    sources = {} if case == "image" else {s: polygraft.load_dataset(r.pop("dataset"), **r)
                                          for s, r in ((s, dict(r)) for s, r in raw["data"].items())}
    labels = sorted(p.name for p in (Path(raw["data"]["train"]["path"]) / "train").iterdir()) if case == "image" \
        else sources["train"].label_names
    task = build_task(raw, labels)
    wall, cpu = time.perf_counter(), time.process_time()
    data = image_inputs(raw, task) if case == "image" else pipeline_inputs(raw, task, sources)
    prepare_s = time.perf_counter() - wall
    size = data["sizes"]["train"]
    steps_per_epoch = math.ceil(size / cfg.batch_size)
    total = steps_per_epoch * cfg.max_epochs
    decay = [p for n, p in task.named_parameters() if not (p.ndim <= 1 or n.endswith(".bias") or "norm" in n.lower())]
    no_decay = [p for n, p in task.named_parameters() if p.ndim <= 1 or n.endswith(".bias") or "norm" in n.lower()]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr, fused=True)
    warmup = cfg.warmup_steps if cfg.warmup_steps is not None else int(cfg.warmup_ratio * total)

    def factor(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return 1.0 - progress if cfg.schedule == "linear" else 0.5 * (1.0 + math.cos(math.pi * progress))

    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    grouped = LengthGroupedSampler(data["lengths"]["train"], batch_size=cfg.batch_size, rank=0, world_size=1,
                                   seed=cfg.seed, drop_last=False) if cfg.group_by_length else None

    def order(epoch: int) -> list[int]:  # polygraft's training order, so both sides see identical batches
        if grouped is not None:
            grouped.set_position(epoch, 0)
            return list(grouped)
        return torch.randperm(size, generator=torch.Generator().manual_seed(cfg.seed + epoch)).tolist()

    @torch.no_grad()
    def evaluate(split: str) -> float:
        task.eval()
        lengths = data["lengths"].get(split)
        indices = list(range(data["sizes"][split]))
        if lengths is not None:
            indices.sort(key=lambda i: -lengths[i])
        right = 0
        for start in range(0, len(indices), cfg.eval_batch_size or cfg.batch_size):
            batch = data["batch"](split, indices[start : start + (cfg.eval_batch_size or cfg.batch_size)])
            right += int((task(batch).outputs.argmax(-1) == batch["labels"]).sum())
        task.train()
        return right / len(indices)

    torch.manual_seed(cfg.seed)  # as the trainer: the same dropout masks
    task.train()
    wait = step_time = eval_time = step_cpu = 0.0
    losses: list[float] = []
    every: list[float] = []
    accuracy = float("nan")
    for epoch in range(cfg.max_epochs):
        every += losses
        indices, losses = order(epoch), []
        for start in range(0, size, cfg.batch_size):
            began, began_cpu = time.perf_counter(), time.process_time()
            batch = data["batch"]("train", indices[start : start + cfg.batch_size])
            wait += time.perf_counter() - began
            loss = task(batch).loss
            loss.backward()
            # clipped in the optimizer's order, as the trainer does: the norm's float sum depends on the order
            torch.nn.utils.clip_grad_norm_([p for group in optimizer.param_groups for p in group["params"]
                                            if p.grad is not None], cfg.clip_grad_norm)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            schedule.step()
            losses.append(float(loss))
            step_time += time.perf_counter() - began
            step_cpu += time.process_time() - began_cpu
        began = time.perf_counter()
        if "val" in data["sizes"]:
            accuracy = evaluate("val")
        eval_time += time.perf_counter() - began
    began = time.perf_counter()
    if "test" in data["sizes"]:
        evaluate("test")
    eval_time += time.perf_counter() - began
    return {"wall_s": time.perf_counter() - wall, "cpu_s": time.process_time() - cpu, "prepare_s": prepare_s,
            "wait_share": wait / max(step_time, 1e-9), "steps": total, "final_loss": statistics.fmean(losses),
            "train_s": step_time, "train_cpu_s": step_cpu, "eval_s": eval_time,
            "val_accuracy": accuracy, "losses": every + losses}


# ---------------------------------------------------------------------------------------------- driver
def child(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(args.threads)
    result = (run_polygraft if args.side == "polygraft" else run_plain)(args.case, args)
    print("RESULT " + json.dumps(result), flush=True)


def available(case: str) -> str | None:
    """Why ``case`` cannot run here, or None."""
    if not (ROOT / RECIPES[case]).is_file():
        return f"{RECIPES[case]} does not exist"
    if case == "audio":
        from importlib.util import find_spec

        if find_spec("polygraft_speech") is None:
            return "the speech plugin (polygraft-speech) is not installed"
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", default="image,text,audio")
    parser.add_argument("--image-train", type=int, default=4000)
    parser.add_argument("--image-val", type=int, default=1000)
    parser.add_argument("--text-train", type=int, default=2000)
    parser.add_argument("--text-test", type=int, default=1000)
    parser.add_argument("--epochs", type=int, help="override every recipe's max_epochs")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--omp-wait-policy", default="PASSIVE", choices=["PASSIVE", "ACTIVE", "inherit"],
                        help="OMP_WAIT_POLICY of both sides (PASSIVE: idle OpenMP threads sleep instead of spinning "
                             "on a core another process needs; it halves step times on a busy 2-core machine)")
    parser.add_argument("--repeats", type=int, default=1, help="runs per side (alternating order); medians shown")
    parser.add_argument("--polygraft", action="append", default=[], metavar="KEY=VALUE",
                        help="recipe override for the polygraft side only (e.g. trainer.cache=false)")
    parser.add_argument("--work-dir", default="/tmp/polygraft-bench-input")
    parser.add_argument("--json", dest="json_out", help="also write the results to this file")
    parser.add_argument("--case", help=argparse.SUPPRESS)
    parser.add_argument("--side", choices=["polygraft", "plain"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.side:
        child(args)
        return 0
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads),
           "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1", "PYTHONWARNINGS": "ignore"}
    if args.omp_wait_policy != "inherit":
        env["OMP_WAIT_POLICY"] = args.omp_wait_policy
    forwarded = [a for a in (argv if argv is not None else sys.argv[1:])]
    print(f"load before: {os.getloadavg()[0]:.2f} | threads {args.threads} | {os.cpu_count()} cores | "
          f"OMP_WAIT_POLICY {env.get('OMP_WAIT_POLICY', 'unset')} | polygraft overrides: {args.polygraft or 'none'}",
          flush=True)
    results: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for case in [c for c in args.cases.split(",") if c]:
        missing = available(case)
        if missing:
            print(f"{case}: skipped ({missing})")
            continue
        if case == "image":
            write_digits(Path(args.work_dir) / "digits-png", args.image_train, args.image_val)
        results[case] = {"polygraft": [], "plain": []}
        for repeat in range(args.repeats):
            for side in ("polygraft", "plain") if repeat % 2 == 0 else ("plain", "polygraft"):
                proc = subprocess.run([sys.executable, __file__, *forwarded, "--case", case, "--side", side],
                                      env=env, capture_output=True, text=True)
                lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
                if proc.returncode != 0 or not lines:
                    print(proc.stdout[-2000:], proc.stderr[-4000:], sep="\n", file=sys.stderr)
                    raise SystemExit(f"{case}/{side} failed (exit {proc.returncode})")
                row = {**json.loads(lines[-1][len("RESULT "):]), "load": os.getloadavg()[0],
                       "cache_log": [line for line in proc.stderr.splitlines() if line.startswith("input cache:")]}
                results[case][side].append(row)
                print(f"{case:6s} {side:10s} wall {row['wall_s']:7.1f} s (data preparation {row['prepare_s']:5.1f}, "
                      f"train steps {row['train_s']:6.1f} (cpu {row['train_cpu_s']:6.1f}), evaluation {row['eval_s']:5.1f}, other "
                      f"{row['wall_s'] - row['prepare_s'] - row['train_s'] - row['eval_s']:5.1f})  cpu "
                      f"{row['cpu_s']:7.1f} s  data wait {100 * row['wait_share']:4.1f}% of step time  final loss "
                      f"{row['final_loss']:.4f}  val accuracy {row['val_accuracy']:.4f}  steps {row['steps']}  "
                      f"load {row['load']:.2f}", flush=True)
                for line in row["cache_log"]:
                    print(f"{'':18s}{line}")
    print(f"\nload after: {os.getloadavg()[0]:.2f}")
    ratios = {}
    for case, sides in results.items():
        walls = {side: statistics.median(r["wall_s"] for r in runs) for side, runs in sides.items()}
        cpus = {side: statistics.median(r["cpu_s"] for r in runs) for side, runs in sides.items()}
        ratios[case] = walls["polygraft"] / walls["plain"]
        drift = max((abs(a - b) for a, b in zip(sides["polygraft"][0]["losses"], sides["plain"][0]["losses"])),
                    default=float("nan"))
        spread = {side: [round(r["wall_s"], 1) for r in runs] for side, runs in sides.items()}
        print(f"{case}: polygraft {walls['polygraft']:.1f} s vs plain {walls['plain']:.1f} s (runs {spread}); "
              f"wall ratio {ratios[case]:.3f}, CPU ratio {cpus['polygraft'] / cpus['plain']:.3f}; largest step-loss "
              f"difference {drift:.2e}")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps({"args": vars(args), "results": results}, indent=1))
    if "image" in ratios:
        print(f"polygraft/plain time ratio: {ratios['image']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""polygraft's recipe defaults against the plain-PyTorch loop a user would otherwise write, on the same work.

Each case runs both sides in fresh subprocesses, alternated, ``--repeats`` times, with the same threads; a side's
time is the whole process (imports, data, model, training, the final evaluation), as a user waits for it. The
polygraft side is the example recipe through the CLI with nothing changed (``polygraft finetune RECIPE
output_dir=TMP``), so it pays for what its defaults do (validation each epoch, checkpoints, the run directory).

Cases (more to come: sentiment, spoken digits with Whisper and the spectrogram CNN, shapes detection):

* ``digits``: ``examples/vision/digits.yaml`` (EfficientNet-Lite0 ImageNet, mnist-5k 4,000 train / 1,000 test at
  64 px, 3 epochs, AdamW 1e-3 wd 0.01, cosine with 5% warm-up, clip 1.0, batch 64) against a loop over in-memory
  tensors: the same timm model and weights (through ``polygraft.create_backbone``, so only the loop differs), a
  dropout + linear head, ``torch.nn.functional.interpolate`` to 64 px, evaluated once at the end.

Usage:
    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/vs_peers.py --cases digits --repeats 2
    .venv/bin/python benchmarks/vs_peers.py --cases digits --repeats 1 --quick     # tiny smoke run

The last lines print one row per case: seconds (min over repeats) and accuracy of each side and the
polygraft/peer time ratio (below 1: polygraft is faster).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def peer_digits(quick: bool) -> dict[str, Any]:
    """The hand-written loop: tensors in memory, one evaluation at the end."""
    import math

    import torch
    import torch.nn.functional as F

    import polygraft

    torch.manual_seed(0)
    train = polygraft.load_dataset("mnist-5k", split="train", seed=0)
    test = polygraft.load_dataset("mnist-5k", split="test", seed=0)
    if quick:
        train.images, train.labels = train.images[:128], train.labels[:128]
        test.images, test.labels = test.images[:64], test.labels[:64]

    def tensors(source: Any) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.tensor(source.images, dtype=torch.float32).div(255).unsqueeze(1)
        x = F.interpolate(x, size=64, mode="bilinear", align_corners=False).expand(-1, 3, -1, -1)
        return (x - 0.5) / 0.5, torch.tensor(source.labels, dtype=torch.long)

    (x_train, y_train), (x_test, y_test) = tensors(train), tensors(test)
    backbone = polygraft.create_backbone("timm", weights="efficientnet-lite0-imagenet",
                                         model_name="tf_efficientnet_lite0", image_size=64, crop_pct=1.0)
    model = torch.nn.Sequential(backbone.model, torch.nn.Dropout(0.1), torch.nn.Linear(backbone.feature_dim, 10))
    decay = [p for n, p in model.named_parameters() if p.ndim > 1]
    rest = [p for n, p in model.named_parameters() if p.ndim <= 1]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": rest, "weight_decay": 0.0}],
                                  lr=1e-3)
    epochs, batch = 3, 64
    steps = epochs * math.ceil(len(y_train) / batch)
    warmup = max(1, int(0.05 * steps))
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: (s + 1) / warmup if s < warmup else
                                                 0.5 * (1 + math.cos(math.pi * (s - warmup) / max(1, steps - warmup))))
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(y_train))
        for start in range(0, len(order), batch):
            index = order[start:start + batch]
            loss = F.cross_entropy(model(x_train[index]), y_train[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
    model.eval()
    with torch.inference_mode():
        predicted = torch.cat([model(x_test[i:i + 256]).argmax(-1) for i in range(0, len(y_test), 256)])
    return {"accuracy": float((predicted == y_test).float().mean())}


RECIPES = {"digits": ("examples/vision/digits.yaml", "val/accuracy",
                      ["data.train.seed=0"], ["trainer.max_steps=2", "trainer.max_epochs=null"])}
PEERS = {"digits": peer_digits}


def _timed(command: list[str], env: dict[str, str]) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"failed ({done.returncode}): {' '.join(command)}\n{done.stderr[-3000:]}")
    return seconds, done.stdout


def run_side(case: str, side: str, args: argparse.Namespace, env: dict[str, str]) -> dict[str, Any]:
    if side == "peer":
        command = [sys.executable, __file__, "--peer", case, *(["--quick"] if args.quick else [])]
        seconds, out = _timed(command, env)
        return {"seconds": seconds, **json.loads(out.strip().splitlines()[-1])}
    recipe, metric, always, quick = RECIPES[case]
    with tempfile.TemporaryDirectory() as tmp:
        command = [sys.executable, "-m", "polygraft", "finetune", recipe, f"output_dir={tmp}/run",
                   "trainer.progress=false", *always, *(quick if args.quick else [])]
        seconds, _ = _timed(command, env)
        results = json.loads((Path(tmp) / "run" / "results.json").read_text())
    return {"seconds": seconds, "accuracy": results.get(metric), "train_s": results.get("train/wall_time_s"),
            "validation_s": results.get("train/validation_s"), "checkpoint_s": results.get("train/checkpoint_s")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", default="digits", help=f"comma-separated, of {sorted(RECIPES)}")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "2")))
    parser.add_argument("--quick", action="store_true", help="a few steps only (checks that the script runs)")
    parser.add_argument("--json", metavar="FILE", help="write every run's numbers here")
    parser.add_argument("--peer", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.peer:  # inside the peer's subprocess
        print(json.dumps(PEERS[args.peer](args.quick)))
        return 0
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads),
           "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "MPLBACKEND": "Agg"}
    report: dict[str, Any] = {"machine": f"{os.cpu_count()} CPU cores, {args.threads} threads",
                              "load_at_start": os.getloadavg()[0], "cases": {}}
    for case in args.cases.split(","):
        runs: dict[str, list[dict[str, Any]]] = {"peer": [], "polygraft": []}
        for repeat in range(args.repeats):
            for side in (("peer", "polygraft") if repeat % 2 == 0 else ("polygraft", "peer")):  # alternated
                runs[side].append(run_side(case, side, args, env))
                print(f"{case} {side} run {repeat + 1}: {runs[side][-1]}", flush=True)
        report["cases"][case] = runs
    print(f"\nload average at the end: {os.getloadavg()[0]:.1f}")
    print("| case | peer s (min) | peer accuracy | polygraft s (min) | polygraft accuracy | ratio |")
    print("|---|---|---|---|---|---|")
    for case, runs in report["cases"].items():
        peer, ours = (min(r["seconds"] for r in runs[s]) for s in ("peer", "polygraft"))
        accuracy = {s: statistics.mean(r["accuracy"] for r in runs[s]) for s in runs}
        print(f"| {case} | {peer:.1f} | {accuracy['peer']:.3f} | {ours:.1f} | {accuracy['polygraft']:.3f} | "
              f"**{ours / peer:.2f}** |")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

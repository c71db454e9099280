"""GPU check: every registered task/objective trains a few bf16-mixed steps through the Trainer.

For each combination that the installed plugins provide (classification on ``bert`` and ``timm``,
token-classification on ``bert``, detection on ``timm`` feature maps, the ``mlm`` and ``simclr`` objectives),
it builds a random-init model, generates data in memory (or, for detection, generated shape scenes in a
temporary folder; nothing is downloaded), trains ``--steps`` steps with ``polygraft.Trainer`` and reports:

* throughput in samples/s over the steps after ``--warmup`` (CUDA synchronised at both ends; data loading
  included, ``--workers`` DataLoader workers),
* peak GPU memory (``torch.cuda.max_memory_allocated`` during ``fit``; ``null`` on CPU),
* ms/step, parameter count, the last logged training loss (must be finite), and the error if a task failed.

Sizes: ``--size small`` (default on CUDA: BERT 4x256 at 128 tokens, ResNet-18 at 160 px, detection at 256 px)
or ``--size tiny`` (default on CPU: 1-layer BERT, timm ``test_resnet``). Exit status 1 if any task failed.

Run:
    python benchmarks/gpu_check.py                          # on a CUDA machine: table
    python benchmarks/gpu_check.py --json --out gpu.json    # table, JSON on stdout and in gpu.json
    python benchmarks/gpu_check.py --device cpu --steps 2   # smoke check on a laptop CPU (~1 min)
"""

from __future__ import annotations

import argparse
import datetime
import gc
import json
import math
import os
import platform
import random
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

SIZES: dict[str, dict[str, Any]] = {
    "small": {"bert": {"hidden_size": 256, "num_hidden_layers": 4, "num_attention_heads": 4,
                       "intermediate_size": 1024, "max_length": 128},
              "words": (40, 110), "vocab": 8000, "text_batch": 32,
              "timm": "resnet18", "image": 160, "image_batch": 64,
              "det_image": 256, "det_batch": 16, "det_head": {"fpn_channels": 64}},
    "tiny": {"bert": {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 64,
                      "max_length": 32},
             "words": (5, 25), "vocab": 200, "text_batch": 4,
             "timm": "test_resnet", "image": 32, "image_batch": 4,
             "det_image": 64, "det_batch": 2, "det_head": {"fpn_channels": 64, "extra_levels": 0}},
}
TAGS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
CLASSES = [f"class{i}" for i in range(10)]


# --------------------------------------------------------------------------- generated data
def write_vocab(directory: Path, size: int) -> Path:
    """A WordPiece vocab: special tokens, ``size`` made-up whole words, letters."""
    letters = [chr(c) for c in range(ord("a"), ord("z") + 1)]
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *letters, *[f"##{c}" for c in letters],
              *[f"w{i}" for i in range(size)]]
    path = directory / "vocab.txt"
    path.write_text("\n".join(tokens) + "\n")
    return path


def random_words(rng: random.Random, profile: dict[str, Any]) -> list[str]:
    low, high = profile["words"]
    return [f"w{rng.randrange(profile['vocab'])}" for _ in range(rng.randint(low, high))]


def random_tags(rng: random.Random, count: int) -> list[str]:
    """Valid BIO: an I- tag only continues an entity of the same type."""
    tags, previous = [], "O"
    for _ in range(count):
        kind = rng.choice(["PER", "LOC"])
        choice = rng.choices(["O", "B", "I"], weights=[6, 2, 2])[0]
        if choice == "I" and previous != "O":
            tags.append("I-" + previous[2:])
        elif choice == "O":
            tags.append("O")
        else:
            tags.append(f"B-{kind}")
        previous = tags[-1]
    return tags


def random_images(rng: random.Random, count: int, size: int, distinct: int = 64) -> list[Any]:
    """``count`` references to ``distinct`` random RGB images (slightly larger than the model input)."""
    import numpy as np
    from PIL import Image

    gen = np.random.default_rng(rng.randrange(2**31))
    side = int(size * 1.15)
    pool = [Image.fromarray(gen.integers(0, 256, (side, side, 3), dtype=np.uint8)) for _ in range(min(distinct, count))]
    return [pool[i % len(pool)] for i in range(count)]


# --------------------------------------------------------------------------- the checks
def build(name: str, profile: dict[str, Any], steps: int, batch_size: int | None,
          tmp: Path) -> tuple[Any, Any, int]:
    """(training module, DataSource of ``steps`` batches, batch size) for check ``name``."""
    import polygraft
    from polygraft.interfaces import ListSource

    key = "text_batch" if "bert" in name else "det_batch" if name.startswith("detection") else "image_batch"
    batch_size = batch_size or profile[key]
    count = steps * batch_size
    rng = random.Random(0)
    bert = {"tokenizer": str(write_vocab(tmp, profile["vocab"])), **profile["bert"]}
    image = {"model_name": profile["timm"], "image_size": profile["image"]}
    if name == "classification/bert":
        data = ListSource([{"text": " ".join(random_words(rng, profile)), "label": rng.choice(CLASSES[:2])}
                           for _ in range(count)], label_names=CLASSES[:2])
        task = polygraft.create_task("classification", backbone="bert", label_names=CLASSES[:2],
                                     backbone_options=bert)
        return task, data, batch_size
    if name == "token-classification/bert":
        examples = []
        for _ in range(count):
            words = random_words(rng, profile)
            examples.append({"tokens": words, "tags": random_tags(rng, len(words))})
        task = polygraft.create_task("token-classification", backbone="bert", label_names=TAGS, backbone_options=bert)
        return task, ListSource(examples, label_names=TAGS), batch_size
    if name == "mlm/bert":
        data = ListSource([{"text": " ".join(random_words(rng, profile))} for _ in range(count)])
        return polygraft.create_objective("mlm", backbone="bert", backbone_options=bert), data, batch_size
    if name == "classification/timm":
        images = random_images(rng, count, profile["image"])
        data = ListSource([{"image": im, "label": rng.choice(CLASSES)} for im in images], label_names=CLASSES)
        task = polygraft.create_task("classification", backbone="timm", label_names=CLASSES, backbone_options=image)
        return task, data, batch_size
    if name == "simclr/timm":
        data = ListSource([{"image": im} for im in random_images(rng, count, profile["image"])])
        return polygraft.create_objective("simclr", backbone="timm", backbone_options=image), data, batch_size
    if name == "detection/timm-maps":
        from polygraft_vision.shapes import generate_shapes

        annotations = generate_shapes(tmp / "shapes", num_images=count, image_size=profile["det_image"],
                                      max_shapes=4, seed=0)
        data = polygraft.load_dataset("coco", annotations=str(annotations))
        task = polygraft.create_task("detection", backbone="timm", label_names=data.label_names,
                                     backbone_options={"model_name": profile["timm"], "features": "maps",
                                                       "image_size": profile["det_image"]},
                                     **profile["det_head"])
        return task, data, batch_size
    raise ValueError(name)


CHECKS: dict[str, tuple[str, str, str]] = {  # name -> (kind, component, backbone) that must be registered
    "classification/bert": ("tasks", "classification", "bert"),
    "token-classification/bert": ("tasks", "token-classification", "bert"),
    "mlm/bert": ("objectives", "mlm", "bert"),
    "classification/timm": ("tasks", "classification", "timm"),
    "simclr/timm": ("objectives", "simclr", "timm"),
    "detection/timm-maps": ("tasks", "detection", "timm"),
}


def available_checks() -> tuple[list[str], dict[str, str]]:
    """Checks whose task/objective and backbone are registered; the others with the reason."""
    import polygraft

    registered = {kind: {row["name"] for row in polygraft.list_components(kind)}
                  for kind in ("tasks", "objectives", "backbones")}
    ready, missing = [], {}
    for name, (kind, component, backbone) in CHECKS.items():
        if component not in registered[kind]:
            missing[name] = f"{kind[:-1]} {component!r} is not registered"
        elif backbone not in registered["backbones"]:
            missing[name] = f"backbone {backbone!r} is not registered"
        else:
            ready.append(name)
    return ready, missing


def run_check(name: str, args: argparse.Namespace, device: Any, sync: Callable[[], None]) -> dict[str, Any]:
    import torch

    import polygraft
    from polygraft.interfaces import Callback

    profile = SIZES[args.size]
    warmup = max(1, min(args.warmup, args.steps - 1))
    stamps: dict[int, float] = {}

    class Clock(Callback):
        def on_train_step_end(self, trainer: Any, step: int, loss: Any, batch: Any, output: Any) -> None:
            if step in (warmup, args.steps):
                sync()
                stamps[step] = time.perf_counter()

    with tempfile.TemporaryDirectory(prefix=f"pg-gpu-{name.replace('/', '-')}-") as tmp:
        torch.manual_seed(0)
        module, data, batch_size = build(name, profile, args.steps, args.batch_size, Path(tmp))
        config = polygraft.TrainerConfig(max_steps=args.steps, batch_size=batch_size, lr=args.lr,
                                         precision=args.precision, device=str(device), num_workers=args.workers,
                                         progress=False, log_every=max(1, args.steps // 2), drop_last=True,
                                         checkpoint_every=10**9, compile=args.compile, seed=0)
        if device.type == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(device)
        start = time.perf_counter()
        result = polygraft.Trainer(config, output_dir=Path(tmp) / "run", callbacks=[Clock()]).fit(
            module, train_data=data)
        fit_s = time.perf_counter() - start
        peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
        losses = [row["train/loss"] for row in result.history if "train/loss" in row]
    timed_steps = args.steps - warmup
    seconds = stamps[args.steps] - stamps[warmup]
    loss = losses[-1] if losses else float("nan")
    row = {"check": name, "ok": math.isfinite(loss), "batch_size": batch_size, "steps": args.steps,
           "timed_steps": timed_steps, "samples_per_s": timed_steps * batch_size / seconds,
           "ms_per_step": 1000 * seconds / timed_steps, "peak_memory_mib": peak,
           "params_m": sum(p.numel() for p in module.parameters()) / 1e6, "final_loss": loss,
           "fit_s": fit_s, "error": None if math.isfinite(loss) else "training loss is not finite"}
    return row


def environment(device: Any, args: argparse.Namespace) -> dict[str, Any]:
    import torch

    import polygraft

    info: dict[str, Any] = {"date": datetime.datetime.now().isoformat(timespec="seconds"), "host": platform.node(),
                            "python": platform.python_version(), "torch": torch.__version__,
                            "polygraft": polygraft.__version__, "device": str(device), "size": args.size,
                            "precision": args.precision, "steps": args.steps, "workers": args.workers,
                            "compile": args.compile}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update({"gpu": props.name, "gpu_memory_gib": round(props.total_memory / 2**30, 1),
                     "capability": f"{props.major}.{props.minor}", "cuda": torch.version.cuda,
                     "bf16_supported": torch.cuda.is_bf16_supported()})
    else:
        info["cpu_threads"] = torch.get_num_threads()
    return info


def print_table(rows: list[dict[str, Any]]) -> None:
    print(f"{'check':<28} {'ok':<4} {'batch':>5} {'samples/s':>10} {'ms/step':>9} {'peak MiB':>9} "
          f"{'params M':>8} {'loss':>8}")
    for row in rows:
        if row.get("samples_per_s") is None:
            print(f"{row['check']:<28} {'FAIL' if row['error'] else 'skip':<4} {row['error']}")
            continue
        peak = f"{row['peak_memory_mib']:9.0f}" if row["peak_memory_mib"] is not None else f"{'-':>9}"
        print(f"{row['check']:<28} {'yes' if row['ok'] else 'FAIL':<4} {row['batch_size']:>5} "
              f"{row['samples_per_s']:10.1f} {row['ms_per_step']:9.1f} {peak} {row['params_m']:8.2f} "
              f"{row['final_loss']:8.3f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", help="auto | cuda | cuda:N | cpu")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5, help="steps before the throughput clock starts")
    parser.add_argument("--size", choices=sorted(SIZES), help="model/data size (default: small on CUDA, tiny on CPU)")
    parser.add_argument("--batch-size", type=int, help="override every check's batch size")
    parser.add_argument("--precision", default="bf16-mixed", choices=["bf16-mixed", "fp16-mixed", "32"])
    parser.add_argument("--workers", type=int, help="DataLoader workers (default: 4 on CUDA, 0 on CPU)")
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--compile", action="store_true", help="trainer.compile=true (torch.compile)")
    parser.add_argument("--only", help="comma-separated check names (default: every available one)")
    parser.add_argument("--json", action="store_true", help="also print the results as JSON")
    parser.add_argument("--out", help="write the JSON results to this file")
    args = parser.parse_args(argv)
    if args.steps < 2:
        parser.error("--steps must be at least 2 (one warm-up step, one timed)")

    import torch

    from polygraft.training.precision import pick_device

    device = pick_device(args.device)
    args.size = args.size or ("small" if device.type == "cuda" else "tiny")
    args.workers = args.workers if args.workers is not None else (4 if device.type == "cuda" else 0)
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)
    if device.type != "cuda":
        print(f"note: running on {device}, not a GPU: a smoke check, peak memory is not measured", file=sys.stderr)

    ready, missing = available_checks()
    selected = args.only.split(",") if args.only else ready
    unknown = [name for name in selected if name not in CHECKS]
    if unknown:
        parser.error(f"unknown check(s) {unknown}; known: {', '.join(CHECKS)}")
    rows: list[dict[str, Any]] = [{"check": name, "ok": False, "samples_per_s": None,
                                   "error": f"skipped: {reason}"} for name, reason in missing.items()
                                  if name in selected]
    for name in selected:
        if name not in ready:
            continue
        print(f"[{name}] {args.steps} steps ...", file=sys.stderr, flush=True)
        try:
            rows.append(run_check(name, args, device, sync))
        except Exception as exc:  # report every task, keep going
            traceback.print_exc()
            rows.append({"check": name, "ok": False, "samples_per_s": None, "error": f"{type(exc).__name__}: {exc}"})
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()

    report = {"environment": environment(device, args), "results": rows}
    print_table(rows)
    if args.json:
        print(json.dumps(report, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    failed = [row["check"] for row in rows if not row["ok"] and not str(row["error"]).startswith("skipped")]
    if failed:
        print(f"FAILED: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

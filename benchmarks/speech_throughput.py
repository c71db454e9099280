"""Training throughput of each speech recipe's backbone on CPU, and the share of step time spent waiting for data.

For every recipe named (default: the four in ``examples/speech``), the task is built exactly as
``polygraft finetune RECIPE`` builds it (recipe, catalog, label names from the training split, strategies), and
trained for ``--steps`` optimizer steps through core's own training DataLoader (``polygraft.inputs.loaders.
make_loader``: the recipe's batch size, length grouping and ``--num-workers``). Each step is timed in two parts:

* **data**: waiting for the next batch (``next(loader)``): with ``num_workers=0`` that is decoding the WAVs,
  resampling and the feature extraction (log-mel, spectrogram image, waveform normalisation) in the main process;
  with workers it is only the time the model waits for them;
* **compute**: forward, backward, gradient clipping and a fused AdamW step.

The first ``--warmup`` steps are left out. Printed per recipe: training samples/s over the timed steps, ms per
step, and ``data share`` = data / (data + compute). ``os.getloadavg()`` before and after is printed too (the
development machine is shared: numbers are indicative).

Run:
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/speech_throughput.py                       # 30 timed steps each
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/speech_throughput.py --num-workers 1        # decode in a worker
    .venv/bin/python benchmarks/speech_throughput.py --smoke       # tiny models and data (tests the script, ~20 s)
    .venv/bin/python benchmarks/speech_throughput.py --recipes examples/speech/asr_digits.yaml --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RECIPES = ("spoken_digits_whisper.yaml", "spoken_digits_spectrogram.yaml", "spoken_digits.yaml", "asr_digits.yaml")
SMOKE_DATA = {"voices": ["en-us", "en+f3", "en-029", "en+m3"], "speeds": [170], "pitches": [50],
              "val_voices": 1, "test_voices": 1}
SMOKE_BACKBONES = {  # tiny random-init versions of each recipe's backbone (the smoke run checks the script only)
    "whisper-encoder": {"preset": "test"},
    "wav2vec2": {"size": "tiny"},
    "spectrogram": {"image_backbone": "timm", "model_name": "test_resnet", "n_mels": 32},
}


def smoke_overrides(recipe: Any, cache: str) -> list[str]:
    """Overrides that make a recipe tiny: small random backbone, 4 voices, 2 clips a batch."""
    overrides = ["weights=null", "trainer.batch_size=2"]
    options = SMOKE_BACKBONES[recipe.backbone]
    overrides.append("backbone_options=" + json.dumps(options))
    for split in recipe.data:
        extra = {**SMOKE_DATA, "cache_dir": cache}
        if recipe.data[split]["dataset"] == "spoken-digit-strings":
            extra["clips_per_voice"] = 2
        overrides += [f"data.{split}.{key}={json.dumps(value)}" for key, value in extra.items()]
    return overrides


def measure(path: Path, *, steps: int, warmup: int, num_workers: int, overrides: list[str]) -> dict[str, Any]:
    import torch

    from polygraft.finetune import build_strategies
    from polygraft.inputs.datasets import raise_worker_errors
    from polygraft.inputs.loaders import SingleProcess, make_loader
    from polygraft.plugins import build_catalog
    from polygraft.recipe import Recipe, build_module, load_split

    recipe = Recipe.from_yaml(path, overrides=overrides)
    catalog = build_catalog()
    train = load_split(recipe, "train", catalog)
    torch.manual_seed(recipe.trainer.seed)
    module = build_module(recipe, train, catalog)
    for strategy in build_strategies(recipe.strategy, catalog):
        strategy.setup(module)
    module.train()
    params = [p for p in module.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=recipe.trainer.lr, fused=True)
    pipeline = module.data_pipeline(training=True)
    grouped = recipe.trainer.group_by_length
    lengths = (train.lengths() or pipeline.lengths(train)) if grouped else None
    loader = make_loader(train, pipeline, batch_size=recipe.trainer.batch_size, shuffle=True,
                         seed=recipe.trainer.seed, drop_last=False, num_workers=num_workers, ranks=SingleProcess(),
                         pin_memory=False, lengths=lengths, group_by_length=grouped)
    batches = raise_worker_errors(loader)
    data_s, compute_s, samples = [], [], []
    for step in range(warmup + steps):
        start = time.perf_counter()
        try:
            batch = next(batches)
        except StopIteration:  # a short (smoke) data set: start another epoch
            batches = raise_worker_errors(loader)
            batch = next(batches)
        ready = time.perf_counter()
        output = module({key: value for key, value in batch.items()})
        output.loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        done = time.perf_counter()
        if step >= warmup:
            data_s.append(ready - start)
            compute_s.append(done - ready)
            samples.append(int(batch["labels"].shape[0]) if "labels" in batch else
                           int(batch["target_lengths"].shape[0]))
    total = sum(data_s) + sum(compute_s)
    return {"recipe": str(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path),
            "backbone": recipe.backbone, "weights": recipe.weights, "batch_size": recipe.trainer.batch_size,
            "trainable_parameters": sum(p.numel() for p in params), "steps": steps,
            "samples_per_s": round(sum(samples) / total, 2), "ms_per_step": round(1000 * total / steps, 1),
            "median_ms_per_step": round(1000 * statistics.median(d + c for d, c in zip(data_s, compute_s)), 1),
            "data_ms_per_step": round(1000 * sum(data_s) / steps, 1), "data_share": round(sum(data_s) / total, 3),
            "num_workers": num_workers, "threads": torch.get_num_threads()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipes", nargs="*", default=[str(ROOT / "examples" / "speech" / r) for r in RECIPES])
    parser.add_argument("--steps", type=int, default=30, help="timed optimizer steps per recipe")
    parser.add_argument("--warmup", type=int, default=3, help="steps left out of the timing")
    parser.add_argument("--num-workers", type=int, default=0, help="DataLoader workers (0: decode in the loop)")
    parser.add_argument("--smoke", action="store_true", help="tiny random models and 4-voice data (checks the script)")
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    import torch

    from polygraft.recipe import Recipe

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", torch.get_num_threads())))
    print(f"load before: {os.getloadavg()[0]:.2f}, threads {torch.get_num_threads()}", file=sys.stderr)
    results = []
    with tempfile.TemporaryDirectory() as cache:
        for recipe_path in args.recipes:
            path = Path(recipe_path).resolve()
            overrides = smoke_overrides(Recipe.from_yaml(path), cache) if args.smoke else []
            steps, warmup = (3, 1) if args.smoke else (args.steps, args.warmup)
            result = measure(path, steps=steps, warmup=warmup, num_workers=args.num_workers, overrides=overrides)
            results.append(result)
            print(f"{result['recipe']:45s} {result['samples_per_s']:8.1f} samples/s  {result['ms_per_step']:7.1f} "
                  f"ms/step  data {result['data_share']:.1%} ({result['data_ms_per_step']:.1f} ms/step)  "
                  f"batch {result['batch_size']}  trainable {result['trainable_parameters']:,}", flush=True)
    print(f"load after: {os.getloadavg()[0]:.2f}", file=sys.stderr)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

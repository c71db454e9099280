"""Seconds to explain one input, per method and modality, on one CPU thread (examples/explain/README.md).

Each case is a trained run from examples/explain/README.md when it exists, else the same architecture with
packaged pretrained weights and an untrained head (the cost of an explanation does not depend on the weights).
Every (case, method) explains the same input ``--repeats`` times after one warm-up; the median wall time is
printed with its spread, the median CPU time of this (single-threaded) process beside it (on a machine shared
with other work the CPU time is what a quiet core would take), and the number of explained outputs (words,
boxes, characters) per input.

    OMP_NUM_THREADS=1 python benchmarks/explain_cost.py --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any

RUNS = Path("runs/explain")
DIGITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


def _cases() -> list[tuple[str, Any, Any, list[str]]]:
    """(name, a function building the task, input, methods) for each modality and task kind."""
    import polygraft
    from polygraft.errors import PolygraftError

    digits = polygraft.load_dataset("spoken-digits", split="test")
    clip = digits[0]
    strings = polygraft.load_dataset("spoken-digit-strings", split="test")[0]
    shape = polygraft.load_dataset("shape-classification", split="test", size=100, seed=0)[0]

    def run_or(path: str, build: Any) -> Any:  # built when its case runs
        def task() -> Any:
            if (RUNS / path / "model").is_dir():
                try:
                    return polygraft.load(RUNS / path)
                except PolygraftError as exc:  # e.g. a run saved before its preprocessing gained an option
                    print(f"# {RUNS / path}: not loaded ({type(exc).__name__}: {str(exc)[:160]}...); timing the "
                          "same architecture untrained instead", flush=True)
            return build()
        return task

    sentence = "the old film was superb and the music long"
    return [
        ("text classification (MiniLM)", run_or("keywords", lambda: polygraft.create_task(
            "classification", backbone="bert", weights="minilm-l6", num_classes=3)), sentence,
         ["integrated-gradients", "occlusion"]),
        ("token classification (MiniLM, per word)", lambda: polygraft.create_task(
            "token-classification", backbone="bert", weights="minilm-l6", label_names=["O", "B-X", "I-X"]),
         sentence, ["integrated-gradients", "occlusion"]),
        ("image classification (MobileNetV2, 224 px)", run_or("shapes", lambda: polygraft.create_task(
            "classification", backbone="timm", weights="mobilenetv2-imagenet", num_classes=3,
            backbone_options={"model_name": "mobilenetv2_100", "image_size": 224, "crop_pct": 1.0})),
         {"image": shape["image"]}, ["gradcam", "integrated-gradients", "occlusion"]),
        ("detection (MobileNetV2 FPN+FCOS, 128 px, per box)", lambda: polygraft.create_task(
            "detection", backbone="timm", weights="mobilenetv2-imagenet", label_names=["a", "b", "c"],
            backbone_options={"model_name": "mobilenetv2_100", "features": "maps", "image_size": 128}),
         {"image": shape["image"]}, ["gradcam", "integrated-gradients", "occlusion"]),
        ("audio classification (Whisper tiny.en log-mel)", run_or("digits_whisper", lambda: polygraft.create_task(
            "classification", backbone="whisper-encoder", weights="whisper-tiny-en", num_classes=10)),
         clip, ["integrated-gradients", "occlusion"]),
        ("audio classification (spectrogram EfficientNet-Lite0)", run_or("digits_spectrogram", lambda: None), clip,
         ["integrated-gradients", "gradcam", "occlusion"]),
        ("audio classification (wav2vec2 small, waveform)", run_or("digits_wav2vec2", lambda: polygraft.create_task(
            "classification", backbone="wav2vec2", label_names=DIGITS)), clip, ["integrated-gradients", "occlusion"]),
        ("CTC (Whisper tiny.en, per character)", run_or("asr_digits", lambda: None), strings,
         ["integrated-gradients", "occlusion"]),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--output", default="runs/explain/cost.json")
    parser.add_argument("--cases", help="only the cases whose name contains one of these comma-separated words")
    args = parser.parse_args()

    import torch

    from polygraft.explain import Settings, explain

    torch.set_num_threads(1)
    settings = Settings(min_box_score=0.0, max_boxes=3)  # untrained detection heads score low; 3 boxes are timed
    rows = []
    wanted = [w.strip().lower() for w in args.cases.split(",")] if args.cases else None
    for name, build, value, methods in _cases():
        if wanted and not any(w in name.lower() for w in wanted):
            continue
        task = build()
        if task is None:
            print(f"{name}: no run in {RUNS} (train it first, see examples/explain/README.md)")
            continue
        task.eval()
        for method in methods:
            explain(task, value, method=method, settings=settings)  # warm-up: imports, first-call allocations
            seconds, cpu, outputs, steps = [], [], 0, None
            for _ in range(args.repeats):
                start, start_cpu = time.perf_counter(), time.process_time()
                result = explain(task, value, method=method, settings=settings)
                seconds.append(time.perf_counter() - start)
                cpu.append(time.process_time() - start_cpu)
                outputs = len(result.attributions)
                reports = [a.completeness for a in result.attributions if a.completeness]
                steps = max(r["steps"] for r in reports) if reports else None
            row = {"case": name, "method": method, "median_s": statistics.median(seconds),
                   "spread_s": (min(seconds), max(seconds)), "median_cpu_s": statistics.median(cpu),
                   "outputs": outputs, "ig_steps": steps}
            rows.append(row)
            print(f"| {name} | {method} | {row['median_s']:.2f} s ({min(seconds):.2f}–{max(seconds):.2f}) | "
                  f"{row['median_cpu_s']:.2f} s | {outputs} | {steps or '—'} |", flush=True)
    machine = f"{platform.machine()}, {os.cpu_count()} CPU cores, 1 thread, load {os.getloadavg()[0]:.1f}"
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps({"machine": machine, "repeats": args.repeats, "rows": rows}, indent=2))
    print(f"\n{machine}; wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Measure distillation for examples/distill/README.md: a teacher run, then the student alone and the student
distilled from it over several seeds (``polygraft compare``), then inference samples/s of teacher and student.

    python examples/distill/measure.py digits --output runs/distill [--seeds 0,1,2]
    python examples/distill/measure.py sentiment --output runs/distill
    python examples/distill/measure.py speech --output runs/distill

Each experiment trains its teacher once (``OUTPUT/NAME_teacher``; kept and reused when it exists), compares the
two students in ``OUTPUT/NAME_compare`` (re-running resumes it) and prints the README's row as Markdown and JSON.
Inference samples/s: the trained model's forward on batches of 32 prepared validation examples, one thread, after
one warm-up batch (preprocessing not included).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
EXPERIMENTS: dict[str, dict[str, Any]] = {
    "digits": {"teacher": ["examples/vision/digits.yaml", "trainer.max_epochs=2"],
               "student": "examples/distill/digits_student.yaml", "temperature": 4, "alpha": 0.7},
    "sentiment": {"teacher": ["examples/text/sentiment.yaml", "trainer.max_epochs=1"],
                  "student": "examples/distill/sentiment_student.yaml", "temperature": 2, "alpha": 0.5},
    "speech": {"teacher": ["examples/speech/spoken_digits_whisper.yaml", "strategy=[linear-probe]", "trainer.lr=1e-3",
                           "trainer.max_epochs=10", "trainer.eval_every=130"],
               "student": "examples/distill/spoken_digits_student.yaml", "temperature": 4, "alpha": 0.7},
}


def polygraft(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "polygraft", *args], check=True, cwd=ROOT)


def samples_per_s(run_dir: Path, *, batches: int = 8, batch_size: int = 32) -> float:
    """Forward passes per second of the run's trained task on prepared validation examples (one thread)."""
    import torch

    from polygraft.export.samples import _run_examples
    from polygraft.serve.backends import load_backend

    backend = load_backend(run_dir, threads=1)
    raw = _run_examples(run_dir) or []
    items = [backend.prepare(example) for example in raw]
    items = (items * (batch_size // max(1, len(items)) + 1))[:batch_size]
    batch = backend.pipeline.collate(items)
    torch.set_num_threads(1)
    with torch.no_grad():
        backend.task.predict(batch)  # warm-up
        started = time.perf_counter()
        for _ in range(batches):
            backend.task.predict(batch)
    return batches * batch_size / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("experiment", choices=sorted(EXPERIMENTS))
    parser.add_argument("--output", default="runs/distill")
    parser.add_argument("--seeds", default="0,1,2")
    args = parser.parse_args()
    spec = EXPERIMENTS[args.experiment]
    output = (ROOT / args.output).resolve()
    teacher = output / f"{args.experiment}_teacher"
    if not (teacher / "results.json").is_file():
        polygraft("finetune", *spec["teacher"], f"output_dir={teacher}", "overwrite=true", "trainer.progress=false")
    distill = (f"[{{name: distill, teacher: {teacher}, temperature: {spec['temperature']}, "
               f"alpha: {spec['alpha']}}}]")
    compared = output / f"{args.experiment}_compare"
    polygraft("compare", spec["student"], "--vary", f"strategy=[full],{distill}", "--seeds", args.seeds,
              "--output", str(compared), "trainer.progress=false")
    comparison = json.loads((compared / "comparison.json").read_text())
    teacher_results = json.loads((teacher / "results.json").read_text())
    alone, distilled = comparison["variants"]
    metric = alone["metric"]
    row = {"experiment": args.experiment, "metric": metric, "seeds": comparison["seeds"],
           "teacher": {"value": teacher_results.get(metric), "params": teacher_results.get("params/total"),
                       "samples_per_s": round(samples_per_s(teacher), 1)},
           "student_params": alone.get("params/total"),
           "student_samples_per_s": round(samples_per_s(Path(alone["runs"][0]["run_dir"])), 1)}
    for name, variant in (("alone", alone), ("distilled", distilled)):
        row[name] = {"value": variant.get("value"), "std": variant.get("std"), "values": variant.get("values"),
                     "train_s": variant.get("train/wall_time_s")}
    print(json.dumps(row, indent=2))
    print(f"| {args.experiment} | {row['teacher']['value']:.4f} | {alone['value']:.4f} ± {alone['std']:.4f} | "
          f"{distilled['value']:.4f} ± {distilled['std']:.4f} | {row['teacher']['params']:,} → "
          f"{row['student_params']:,} | {row['teacher']['samples_per_s']} → {row['student_samples_per_s']} |")


if __name__ == "__main__":
    main()

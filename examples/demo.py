"""The tour `make demo` runs: one fine-tune per modality and one cross-domain comparison, with progress bars,
then one results table. Everything lands in runs/demo/ (each run's curves.png, confusion.png, results.json; the
comparison's table and chart; results.md, the table printed at the end).

    python examples/demo.py [--output runs/demo] [--only text,vision,speech,cross-domain]

Each step trains through the CLI exactly as a user would (`polygraft finetune RECIPE key=value...`), on budgets cut
down from the full recipes so the tour ends in about ten minutes on a 2-core CPU. A step that fails is reported and
the tour goes on; the exit code is non-zero if any step failed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent


@dataclass
class Step:
    name: str
    says: str  # one line: what the step shows
    recipe: str
    overrides: list[str] = field(default_factory=list)
    metric: str = "test/accuracy"
    vary: list[str] = field(default_factory=list)  # a cross-domain comparison instead of one fine-tune


STEPS = [
    Step("text", "text: a pretrained MiniLM (transformers) learns movie-review sentiment in one pass over 2,000 "
         "reviews", "text/sentiment.yaml", ["trainer.max_epochs=1", "data.val=null", "callbacks=[]"]),
    Step("vision", "vision: an ImageNet EfficientNet-Lite0 (timm) reads handwritten digits after one epoch",
         "vision/digits.yaml", ["trainer.max_epochs=1", "data.val=null", "callbacks=[]",
                                "data.test={dataset: mnist-5k, split: test, seed: 0}"]),
    Step("speech", "speech: Whisper tiny.en's frozen encoder + a linear head recognise digits spoken by unseen voices",
         "speech/spoken_digits_whisper.yaml", ["strategy=[linear-probe]", "trainer.lr=1e-3", "trainer.max_epochs=10",
                                               "data.val=null"]),
    Step("cross-domain", "cross-domain: an ImageNet CNN hears — spectrograms of the same digits, photo-pretrained "
         "vs random init", "speech/spoken_digits_spectrogram.yaml", ["trainer.max_epochs=6", "data.val=null"],
         vary=["backbone_options.image_weights=efficientnet-lite0-imagenet,null"]),
]


def run(command: list[str]) -> int:
    print("$ " + " ".join(command[1:] if command[0] == sys.executable else command), flush=True)
    return subprocess.call(command, env={**os.environ, "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE")})


def fine_tune(step: Step, output: Path) -> list[dict[str, object]]:
    run_dir = output / step.name
    code = run([sys.executable, "-m", "polygraft", "finetune", str(EXAMPLES / step.recipe), *step.overrides,
                f"output_dir={run_dir}"])
    results_file = run_dir / "results.json"
    if code != 0 or not results_file.is_file():
        raise RuntimeError(f"polygraft finetune exited with {code}")
    results = json.loads(results_file.read_text())
    return [{"step": step.name, "variant": Path(step.recipe).stem, "metric": step.metric,
             "value": results.get(step.metric), "seconds": results.get("train/wall_time_s"), "where": str(run_dir)}]


def compare(step: Step, output: Path) -> list[dict[str, object]]:
    where = output / step.name
    command = [sys.executable, "-m", "polygraft", "compare", str(EXAMPLES / step.recipe), *step.overrides,
               "--output", str(where)]
    for axis in step.vary:
        command += ["--vary", axis]
    code = run(command)
    report = where / "comparison.json"
    if not report.is_file():
        raise RuntimeError(f"polygraft compare exited with {code}")
    rows = [{"step": step.name, "variant": _label(row["variant"]), "metric": row.get("metric"),
             "value": row.get("value"), "seconds": row.get("train/wall_time_s"), "where": str(where)}
            for row in json.loads(report.read_text())["variants"]]
    if code != 0:
        raise RuntimeError(f"polygraft compare exited with {code}")
    return rows


def _label(variant: str) -> str:
    """``spoken_digits_spectrogram.backbone_options.image_weights=null`` → ``image_weights=null (random init)``."""
    label = variant.split(".", 1)[-1].removeprefix("backbone_options.")
    return f"{label} (random init)" if label.endswith("=null") else label


def table(rows: list[dict[str, object]]) -> str:
    lines = ["| step | variant | metric | value | train time |", "|---|---|---|---|---|"]
    for row in rows:
        value = f"{row['value']:.3f}" if isinstance(row.get("value"), float) else "failed"
        seconds = f"{row['seconds']:.0f} s" if isinstance(row.get("seconds"), int | float) else "-"
        lines.append(f"| {row['step']} | {row['variant']} | {row['metric']} | {value} | {seconds} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--output", default="runs/demo", type=Path)
    parser.add_argument("--only", default="", help="comma-separated step names")
    args = parser.parse_args()
    wanted = {name for name in args.only.split(",") if name}
    steps = [step for step in STEPS if not wanted or step.name in wanted]
    args.output.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, object]] = []
    failed: list[str] = []
    started = time.perf_counter()
    for number, step in enumerate(steps, start=1):
        print(f"\n[{number}/{len(steps)}] {step.says}", flush=True)
        try:
            rows += (compare if step.vary else fine_tune)(step, args.output)
        except Exception as exc:  # a failing step is reported; the tour goes on
            failed.append(step.name)
            rows.append({"step": step.name, "variant": Path(step.recipe).stem, "metric": step.metric, "value": None,
                         "seconds": None})
            print(f"[{number}/{len(steps)}] {step.name} FAILED: {exc}", file=sys.stderr, flush=True)
    minutes = (time.perf_counter() - started) / 60
    machine = f"{platform.machine()}, {os.cpu_count()} CPU cores, {platform.python_version()}"
    summary = (f"polygraft demo, {date.today().isoformat()}, {machine}, {minutes:.1f} min in all\n\n{table(rows)}\n")
    (args.output / "results.md").write_text(summary)
    (args.output / "results.json").write_text(json.dumps({"rows": rows, "failed": failed}, indent=2) + "\n")
    print("\n" + summary)
    print(f"runs, plots and this table: {args.output}/")
    if failed:
        print(f"failed steps: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

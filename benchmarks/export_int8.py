"""int8 against fp32: accuracy and CPU speed of trained runs in PyTorch, ONNX Runtime fp32 and ONNX Runtime int8.

For each run (default: short runs of the sentiment, digits and spoken-digits recipes, see benchmarks/README.md), the
run is exported with ``polygraft export RUN --format onnx --quantize int8`` (once; reused when its weights are
unchanged), its recipe's test split (else val) is prepared once with the model's own preprocessing, and the same
batches go through the three backends on one thread:

* **accuracy** over the first ``--limit`` examples (identical inputs: only the model changes);
* **throughput** in examples/s over those batches (``--batch-size``, preprocessing excluded), ``--repeats`` times,
  reported as mean ± std, and the speed-up of each backend over PyTorch measured in the same run;
* **latency** of single examples (batch 1, the first 32), median ms.

Run:
    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python benchmarks/export_int8.py runs/sentiment runs/digits \\
        runs/spoken_digits_whisper --json runs/int8.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def _batches(task: Any, run: Path, limit: int, batch_size: int) -> tuple[list[dict[str, Any]], list[int]]:
    import polygraft
    from polygraft.recipe import Recipe, load_split
    from polygraft.run import RunDirectory

    directory = RunDirectory(run, enabled=False)
    recipe = Recipe.from_dict(directory.read_config(), where=str(directory.config_file))
    catalog = polygraft.build_catalog()
    data = load_split(recipe, "test", catalog) if "test" in recipe.data else load_split(recipe, "val", catalog)
    pipeline = task.data_pipeline(training=False)
    items = [pipeline.prepare(data[i]) for i in range(min(limit, len(data)))]
    labels = [int(item["label"]) for item in items]
    return [pipeline.collate(items[i:i + batch_size]) for i in range(0, len(items), batch_size)], labels


def _timed(run_batch: Any, batches: list[dict[str, Any]]) -> tuple[float, list[int]]:
    start = time.perf_counter()
    predicted: list[int] = []
    for batch in batches:
        predicted += run_batch(batch)
    return time.perf_counter() - start, predicted


def measure(run: Path, *, limit: int, batch_size: int, repeats: int) -> dict[str, Any]:
    import torch

    from polygraft.export import load_task
    from polygraft.export.manifest import REPORT_FILE, read_json
    from polygraft.export.onnx_export import (
        INT8_FILE,
        MODEL_FILE,
        run_session,
        session,
        signature_from_report,
    )
    from polygraft.serve.backends import onnx_export_for

    torch.set_num_threads(1)
    task = load_task(run)
    directory = onnx_export_for(run, int8=True)
    report = read_json(directory / REPORT_FILE)
    signature = signature_from_report(report)
    batches, labels = _batches(task, run, limit, batch_size)
    singles, _ = _batches(task, run, 32, 1)

    def torch_run(batch: dict[str, Any]) -> list[int]:
        with torch.no_grad():
            return task.export_outputs(batch["inputs"])["logits"].argmax(-1).tolist()

    def onnx_run(runtime: Any) -> Any:
        return lambda batch: run_session(runtime, signature, batch["inputs"])["logits"].argmax(-1).tolist()

    backends = {"pytorch": torch_run, "onnx fp32": onnx_run(session(directory / MODEL_FILE)),
                "onnx int8": onnx_run(session(directory / INT8_FILE))}
    rows: dict[str, Any] = {}
    for name, run_batch in backends.items():
        _timed(run_batch, batches[:2])  # warm-up
        times, predicted = [], []
        for _ in range(repeats):
            seconds, predicted = _timed(run_batch, batches)
            times.append(len(labels) / seconds)
        latency = []
        for batch in singles:
            start = time.perf_counter()
            run_batch(batch)
            latency.append(1000 * (time.perf_counter() - start))
        rows[name] = {"accuracy": sum(p == t for p, t in zip(predicted, labels)) / len(labels),
                      "examples_per_s": statistics.mean(times), "examples_per_s_std": statistics.pstdev(times),
                      "latency_ms_p50": statistics.median(latency)}
    base = rows["pytorch"]["examples_per_s"]
    for row in rows.values():
        row["speedup_vs_pytorch"] = row["examples_per_s"] / base
    sizes = {"fp32_mb": (directory / MODEL_FILE).stat().st_size / 2 ** 20,
             "int8_mb": (directory / INT8_FILE).stat().st_size / 2 ** 20}
    return {"run": str(run), "examples": len(labels), "batch_size": batch_size, "repeats": repeats, **sizes,
            "backends": rows}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--limit", type=int, default=500, help="examples of the test split measured")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT / "core"))
    load = os.getloadavg()[0]
    results = [measure(run, limit=args.limit, batch_size=args.batch_size, repeats=args.repeats) for run in args.runs]
    print(f"load average before: {load:.2f}, after: {os.getloadavg()[0]:.2f}; torch threads 1, ORT intra-op 1")
    print("| run | backend | accuracy | examples/s (mean ± std) | speed-up vs PyTorch | latency p50, batch 1 |")
    print("|---|---|---|---|---|---|")
    for result in results:
        for name, row in result["backends"].items():
            print(f"| {Path(result['run']).name} ({result['examples']} test) | {name} | {row['accuracy']:.4f} | "
                  f"{row['examples_per_s']:.1f} ± {row['examples_per_s_std']:.1f} | {row['speedup_vs_pytorch']:.2f}x | "
                  f"{row['latency_ms_p50']:.1f} ms |")
        print(f"| {Path(result['run']).name} | size | fp32 {result['fp32_mb']:.1f} MB | int8 {result['int8_mb']:.1f} MB "
              "| | |")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

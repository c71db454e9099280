"""The av-digits measurements a comparison table alone does not give, from the runs of av_digits_compare.yaml:

* **averaging**: each seed's image-only and audio-only models, their test probabilities averaged (a late ensemble
  of two single-modality models), against the fused model;
* **missing modality**: each fused model (trained with and without modality dropout) tested with one modality
  removed from every test example, against the model trained on the modality that is left.

Every number is accuracy on the av-digits test split (speaker-disjoint voices), mean ± std over the seeds found.

    python examples/multimodal/ensemble_and_missing.py runs/multimodal/av_digits [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any

import torch

import polygraft
from polygraft.recipe import Recipe, load_split
from polygraft.run import RunDirectory


def test_split(run: Path, fields: list[str] | None = None) -> Any:
    """The run's own test split, optionally with only ``fields`` kept."""
    recipe = Recipe.from_dict(RunDirectory(run, enabled=False).read_config())
    if fields is not None:
        recipe.data["test"]["fields"] = fields
    return load_split(recipe, "test", polygraft.build_catalog())


@torch.no_grad()
def probabilities(model: Any, data: Any, batch: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, classes) test probabilities and (N,) label ids."""
    pipeline = model.data_pipeline(training=False)
    rows, labels = [], []
    for start in range(0, len(data), batch):
        items = [pipeline.prepare(data[i]) for i in range(start, min(len(data), start + batch))]
        collated = pipeline.collate(items)
        rows.append(torch.softmax(model.head(model.backbone(collated["inputs"])).float(), dim=-1))
        labels.append(collated["labels"])
    return torch.cat(rows), torch.cat(labels)


def accuracy(probs: torch.Tensor, labels: torch.Tensor) -> float:
    return float((probs.argmax(dim=-1) == labels).float().mean())


def spread(values: list[float]) -> str:
    if not values:
        return "—"
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.fmean(values):.3f} ± {std:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("comparison", type=Path, help="the --output folder of av_digits_compare.yaml")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    runs = args.comparison / "runs"
    seeds = sorted({int(p.name.rsplit("seed", 1)[1]) for p in runs.glob("*-seed*") if (p / "model").is_dir()})
    if not seeds:
        sys.exit(f"no finished runs under {runs}; run the comparison first")
    table: dict[str, list[float]] = {}
    for seed in seeds:
        def run(variant: str, seed: int = seed) -> Path:
            return runs / f"{variant}-seed{seed}"

        image_model, audio_model = polygraft.load(run("image-only")), polygraft.load(run("audio-only"))
        image_probs, labels = probabilities(image_model, test_split(run("image-only")))
        audio_probs, _ = probabilities(audio_model, test_split(run("audio-only")))
        table.setdefault("image-only", []).append(accuracy(image_probs, labels))
        table.setdefault("audio-only", []).append(accuracy(audio_probs, labels))
        table.setdefault("average of image-only and audio-only", []).append(accuracy((image_probs + audio_probs) / 2,
                                                                                      labels))
        for variant in ("fusion-mlp", "fusion-mlp-dropout"):
            model, folder = polygraft.load(run(variant)), run(variant)
            table.setdefault(f"{variant}", []).append(accuracy(*probabilities(model, test_split(folder))))
            for kept in ("image", "audio"):
                probs, kept_labels = probabilities(model, test_split(folder, [kept]))
                table.setdefault(f"{variant}, test with {kept} only", []).append(accuracy(probs, kept_labels))
    if args.json:
        print(json.dumps({"seeds": seeds, "accuracy": table}, indent=2))
        return
    print(f"av-digits test accuracy, seeds {seeds}\n\n| model | test accuracy |\n|---|---|")
    for name, values in table.items():
        print(f"| {name} | {spread(values)} |")


if __name__ == "__main__":
    main()

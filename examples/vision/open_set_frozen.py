"""Open-set digit verification with frozen backbone features and no training at all: the baseline the
`digits_open_set.yaml` recipe is measured against (see examples/vision/README.md).

The val split of that recipe (digits 7, 8, 9 of MNIST-5k, seed 0) is embedded by EfficientNet-Lite0's pooled
features, with its ImageNet weights and from random init, and every pair is scored by cosine similarity, with the
same metrics as the metric-learning task.

    OMP_NUM_THREADS=1 python examples/vision/open_set_frozen.py [--split test]
"""

from __future__ import annotations

import argparse

import torch

import polygraft
from polygraft.tasks.verification_metrics import verification_metrics


def embed(weights: str | None, split: str) -> dict[str, float]:
    source = polygraft.load_dataset("mnist-5k", split=split, seed=0, val_size=1000, classes=[7, 8, 9])
    torch.manual_seed(0)
    backbone = polygraft.create_backbone("timm", weights=weights, model_name="tf_efficientnet_lite0", image_size=64,
                                         crop_pct=1.0).eval()
    pre = backbone.preprocessor
    features = []
    with torch.no_grad():
        for start in range(0, len(source), 64):
            items = [pre(source[i]) for i in range(start, min(start + 64, len(source)))]
            features.append(backbone(pre.collate(items)).pooled)
    identities = torch.tensor([int(source[i]["label"]) for i in range(len(source))])
    return verification_metrics(torch.cat(features), identities)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", default="val", choices=["val", "test"])
    args = parser.parse_args()
    print("| weights | roc_auc | eer | tar_at_far | rank1 |\n|---|---|---|---|---|")
    for weights in ("efficientnet-lite0-imagenet", None):
        metrics = embed(weights, args.split)
        print(f"| {weights or 'random init'} | " + " | ".join(f"{metrics[k]:.3f}" for k in
                                                              ("roc_auc", "eer", "tar_at_far", "rank1")) + " |")


if __name__ == "__main__":
    main()

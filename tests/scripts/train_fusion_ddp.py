"""Train a fused toy model under DDP with missing modalities; used by tests/test_fusion_ddp.py.

    torchrun --standalone --nproc-per-node 2 train_fusion_ddp.py OUT

Branch ``c`` is in 4 of 64 examples, so most micro-batches lack it entirely on one rank or both; ``a`` and ``b``
are missing from scattered rows; modality dropout, auxiliary heads and a frozen branch (per-branch
linear-probe) are on. DDP runs with find_unused_parameters=False: a parameter without a gradient would stop it.
"""

from __future__ import annotations

import argparse

import torch

import polygraft
from polygraft.finetune import build_strategies
from polygraft.interfaces import ListSource


def rows() -> list[dict]:
    out = []
    for i in range(64):
        y = i % 2
        example = {"a": [float(y), 0.5], "b": [0.2, float(y), 1.0], "c": [float(y)] * 4, "d": [1.0, float(y)],
                   "label": str(y)}
        if i % 16:
            del example["c"]
        if i % 5 == 0:
            example["a"] = None
        if i % 3 == 0:
            example.pop("b")
        out.append(example)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    toy = {"backbone": "toy", "backbone_options": {"hidden": 8}}
    branches = {name: {**toy, "backbone_options": {"in_features": width, "hidden": 8}}
                for name, width in (("a", 2), ("b", 3), ("c", 4), ("d", 2))}
    task = polygraft.create_task("classification", backbone="fusion", label_names=["0", "1"], backbone_options={
        "branches": branches, "fusion": "transformer", "hidden": 8, "heads": 2, "modality_dropout": 0.3,
        "auxiliary_loss_weight": 0.5})
    strategies = build_strategies([{"name": "per-branch", "branches": {"d": "linear-probe"}}])
    config = polygraft.TrainerConfig(max_steps=8, batch_size=4, lr=3e-3, progress=False, seed=1, num_workers=0)
    data = ListSource(rows(), label_names=["0", "1"])
    polygraft.Trainer(config, output_dir=args.out, strategies=strategies).fit(task, train_data=data, val_data=data)


if __name__ == "__main__":
    main()

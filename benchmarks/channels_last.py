"""Does channels-last pay per backbone family? One training step (forward, backward, AdamW) of polygraft's
classification task on each first-party backbone family, contiguous vs channels-last, alternated.

``trainer.channels_last: auto`` turns it on where ``Backbone.convolutional`` says so; this measures whether that
rule picks the faster format. Random weights (speed does not depend on them), batch 32, one process.

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/channels_last.py --rounds 6
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from typing import Any

CASES: dict[str, tuple[str, dict[str, Any], int]] = {
    "timm efficientnet_lite0 (64 px)": ("timm", {"model_name": "tf_efficientnet_lite0", "image_size": 64}, 64),
    "timm mobilenetv2_100 (64 px)": ("timm", {"model_name": "mobilenetv2_100", "image_size": 64}, 64),
    "timm resnet18 (64 px)": ("timm", {"model_name": "resnet18", "image_size": 64}, 64),
    "timm vit_tiny_patch16 (224 px)": ("timm", {"model_name": "vit_tiny_patch16_224"}, 224),
}


def step_ms(name: str, options: dict[str, Any], size: int, *, channels_last: bool, rounds: int) -> list[float]:
    import torch

    import polygraft

    torch.manual_seed(0)
    task = polygraft.create_task("classification", backbone=name, label_names=[str(i) for i in range(10)],
                                 backbone_options=options)
    if channels_last:
        task.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    optimizer = torch.optim.AdamW(task.parameters(), lr=1e-4)
    batch = {"inputs": {"pixel_values": torch.randn(32, 3, size, size)}, "labels": torch.randint(0, 10, (32,)),
             "meta": {}}
    times = []
    for index in range(rounds + 1):  # the first is a warm-up
        start = time.perf_counter()
        loss = task(batch).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if index:
            times.append((time.perf_counter() - start) * 1000)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=6)
    args = parser.parse_args()
    import torch

    import polygraft

    print(f"{os.cpu_count()} cores, {torch.get_num_threads()} threads, load {os.getloadavg()[0]:.1f}")
    print("| backbone | auto picks | contiguous ms/step | channels-last ms/step | ratio |")
    print("|---|---|---|---|---|")
    for label, (name, options, size) in CASES.items():
        backbone = polygraft.create_backbone(name, **options)
        plain, last = [], []
        for _ in range(2):  # alternated
            plain += step_ms(name, options, size, channels_last=False, rounds=args.rounds)
            last += step_ms(name, options, size, channels_last=True, rounds=args.rounds)
        a, b = statistics.median(plain), statistics.median(last)
        print(f"| {label} | {'on' if backbone.convolutional else 'off'} | {a:.0f} | {b:.0f} | **{b / a:.2f}** |",
              flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

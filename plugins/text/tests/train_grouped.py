"""Fine-tune a tiny BERT with trainer.group_by_length; run under torchrun by test_lengths.py (2 gloo ranks).

    torchrun --standalone --nproc-per-node 2 train_grouped.py VOCAB OUT

Each rank writes ``OUT/batches_rank{R}.json``: the real (unpadded) lengths of every training batch it saw.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch

import polygraft
from polygraft.interfaces import ListSource
from polygraft.training.config import TrainerConfig


def main(vocab: str, out: str) -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    rows = [{"text": " ".join(["the", "film", "was", "very", "good"][: 1 + i % 5] * (1 + i % 3)),
             "label": "pos" if i % 2 else "neg"} for i in range(37)]  # 37: uneven shards and a partial batch
    options = {"tokenizer": vocab, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
               "intermediate_size": 64, "max_length": 32}
    task = polygraft.create_task("classification", backbone="bert", label_names=["neg", "pos"],
                                 backbone_options=options)
    seen: list[list[int]] = []
    task.backbone.model.register_forward_pre_hook(
        lambda module, args, kwargs: seen.append(kwargs["attention_mask"].sum(1).tolist()) if task.training else None,
        with_kwargs=True)
    config = TrainerConfig(max_epochs=2, batch_size=4, lr=1e-3, progress=False, device="cpu", group_by_length=True)
    polygraft.Trainer(config, output_dir=out).fit(task, train_data=ListSource(rows), val_data=ListSource(rows[:9]))
    Path(out, f"batches_rank{os.environ.get('RANK', '0')}.json").write_text(json.dumps(seen))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])

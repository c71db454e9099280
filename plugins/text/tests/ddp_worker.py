"""Worker of the 2-process gloo test in test_token_classification.py (importable by spawned processes)."""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.distributed as dist

TAGS = ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]
# per rank: gold tag sequences and the predictions (rank 0 breaks "new york" into O I-LOC... → a missed LOC)
SHARDS = {
    0: [(["B-PER", "I-PER", "O", "O", "B-LOC", "I-LOC"], ["B-PER", "I-PER", "O", "O", "O", "I-LOC"])],
    1: [(["O", "O", "O", "O", "B-LOC"], ["O", "O", "O", "O", "B-LOC"]),
        (["B-PER", "O", "O", "O", "O"], ["B-PER", "O", "O", "O", "O"])],
}


def run(rank: int, world_size: int, store_path: str, out_dir: str) -> None:
    """Join a gloo group through a FileStore, update metrics with this rank's shard, write compute_metrics."""
    from polygraft.builtin.toy import ToyBackbone
    from polygraft.interfaces import StepOutput
    from polygraft.tasks.token_classification import TokenClassificationTask

    store = dist.FileStore(store_path, world_size)
    dist.init_process_group("gloo", store=store, rank=rank, world_size=world_size)
    try:
        task = TokenClassificationTask(ToyBackbone(), label_names=TAGS)
        ids = {tag: i for i, tag in enumerate(TAGS)}
        shard = SHARDS[rank]
        length = max(len(gold) for gold, _ in shard)
        labels = torch.full((len(shard), length), -100, dtype=torch.long)
        logits = torch.zeros((len(shard), length, len(TAGS)))
        for row, (gold, pred) in enumerate(shard):
            labels[row, : len(gold)] = torch.tensor([ids[t] for t in gold])
            for pos, tag in enumerate(pred):
                logits[row, pos, ids[tag]] = 5.0
        batch = {"inputs": {}, "labels": labels}
        task.update_metrics(batch, StepOutput(loss=torch.tensor(0.0), outputs=logits))
        metrics = task.compute_metrics()
        (Path(out_dir) / f"rank{rank}.json").write_text(json.dumps(metrics))
    finally:
        dist.destroy_process_group()

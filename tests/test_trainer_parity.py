"""The trainer adds nothing to the maths: a plain PyTorch loop with the same model, data order, seed, optimizer
and schedule ends with bit-identical weights (CPU, fp32, full strategy), for a fine-tuning task and a pretraining
objective, with and without gradient accumulation. In the spirit of Lightning Fabric's parity tests.

With accumulation the epoch's batches are stepped in chunks of ``grad_accum``; an epoch whose batch count is not a
multiple of it ends with a shorter chunk that is stepped too, its loss averaged over the micro-batches it has (the
data below has 5 batches per epoch, so accumulating 2 gives steps of 2, 2 and 1 batches)."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

import polygraft
from polygraft.interfaces import DataSource, ListSource, TrainingModule

SEED, LR, EPOCHS = 7, 3e-3, 2


def plain_loop(module: TrainingModule, data: DataSource, *, batch_size: int, grad_accum: int) -> None:
    """What the trainer does, written out by hand: AdamW (fused on CPU, as torch recommends there), the seeded
    epoch order torch's DistributedSampler gives (seed + epoch), one step per chunk of ``grad_accum`` batches with
    each loss divided by the chunk's length (the epoch's last chunk may be shorter)."""
    torch.manual_seed(SEED)
    optimizer = torch.optim.AdamW(module.parameters(), lr=LR, weight_decay=0.0, fused=True)
    pipeline = module.data_pipeline(training=True)
    module.train()
    for epoch in range(EPOCHS):
        order = torch.randperm(len(data), generator=torch.Generator().manual_seed(SEED + epoch)).tolist()
        batches = [order[start:start + batch_size] for start in range(0, len(order), batch_size)]
        for first in range(0, len(batches), grad_accum):
            chunk = batches[first:first + grad_accum]
            for indices in chunk:
                batch = pipeline.collate([pipeline.prepare(data[i]) for i in indices])
                (module(batch).loss / len(chunk)).backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)


def with_trainer(module: TrainingModule, data: DataSource, *, batch_size: int, grad_accum: int) -> None:
    config = polygraft.TrainerConfig(max_epochs=EPOCHS, batch_size=batch_size, grad_accum=grad_accum, lr=LR,
                                     weight_decay=0.0, schedule="constant", clip_grad_norm=None, seed=SEED,
                                     deterministic=True, progress=False, device="cpu")
    polygraft.Trainer(config).fit(module, train_data=data)


def assert_identical(a: TrainingModule, b: TrainingModule) -> None:
    state_a, state_b = a.state_dict(), b.state_dict()
    assert state_a.keys() == state_b.keys()
    changed = 0
    for name in state_a:
        assert torch.equal(state_a[name], state_b[name]), f"{name} differs"
        changed += 1
    assert changed > 0


@pytest.mark.parametrize("grad_accum", [1, 2])
def test_classification_matches_a_plain_loop_bit_for_bit(grad_accum: int) -> None:
    data = polygraft.load_dataset("synthetic-classification", size=40, in_features=6, seed=2)
    torch.manual_seed(0)
    start = polygraft.create_task("classification", backbone="toy", label_names=data.label_names, dropout=0.2,
                                  backbone_options={"in_features": 6, "hidden": 16})
    ours, plain = copy.deepcopy(start), copy.deepcopy(start)
    with_trainer(ours, data, batch_size=8, grad_accum=grad_accum)
    plain_loop(plain, data, batch_size=8, grad_accum=grad_accum)
    assert not torch.equal(ours.head.linear.weight, start.head.linear.weight)  # it trained
    assert_identical(ours, plain)


@pytest.mark.parametrize("grad_accum", [1, 2])
def test_mlm_pretraining_matches_a_plain_loop_bit_for_bit(grad_accum: int, tmp_path: Path) -> None:
    vocab = tmp_path / "vocab.txt"
    words = ["the", "a", "cat", "dog", "sat", "ran", "on", "mat", "fast", "slow"]
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]) + "\n")
    generator = torch.Generator().manual_seed(1)
    texts = [" ".join(words[int(i)] for i in torch.randint(len(words), (int(n),), generator=generator))
             for n in torch.randint(3, 9, (24,), generator=generator)]
    data = ListSource([{"text": text} for text in texts])
    torch.manual_seed(0)
    start = polygraft.create_objective("mlm", backbone="bert", backbone_options={
        "tokenizer": str(vocab), "hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2,
        "intermediate_size": 32, "max_length": 16})
    ours, plain = copy.deepcopy(start), copy.deepcopy(start)
    with_trainer(ours, data, batch_size=4, grad_accum=grad_accum)  # masking is random per batch: same RNG order
    plain_loop(plain, data, batch_size=4, grad_accum=grad_accum)
    assert_identical(ours, plain)

"""The trainer's input cache with text: the tokenizer's fingerprint covers its vocabulary, and length-grouped
fine-tuning reads the same batches from kept token ids as from tokenizing every epoch."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

import polygraft
from polygraft.interfaces import Callback, ListSource
from polygraft.training.config import TrainerConfig


def test_fingerprint_covers_vocabulary_and_settings(catalog, tiny, tmp_path: Path) -> None:
    def pre(**options: Any):
        return polygraft.create_backbone("bert", catalog=catalog, **{**tiny, **options}).preprocessor

    base = pre()
    assert base.deterministic is True and base.fingerprint() == pre().fingerprint()
    assert base.fingerprint() != pre(max_length=16).fingerprint()
    words = Path(tiny["tokenizer"]).read_text().splitlines()
    swapped = tmp_path / "vocab.txt"  # same size, two words exchanged: other ids, same describe()
    swapped.write_text("\n".join([*words[:5], words[6], words[5], *words[7:]]) + "\n")
    other = pre(tokenizer=str(swapped))
    assert other.describe() == base.describe() and other.fingerprint() != base.fingerprint()


class Batches(Callback):
    def __init__(self) -> None:
        self.seen: list[tuple[list[int], list[list[int]]]] = []

    def on_train_batch_end(self, trainer, batch, output) -> None:
        self.seen.append((batch["meta"]["index"].tolist(), batch["inputs"]["input_ids"].tolist()))


def test_length_grouped_batches_are_the_same_with_and_without_the_cache(catalog, tiny) -> None:
    rows = [{"text": " ".join(["the", "film", "was", "very"][: 2 + i % 3] * (1 + i % 5)) + " good",
             "label": "pos" if i % 2 else "neg"} for i in range(30)]

    def fit(cache: Any) -> tuple[Batches, Any, dict[str, torch.Tensor]]:
        torch.manual_seed(0)
        task = polygraft.create_task("classification", backbone="bert", catalog=catalog, label_names=["neg", "pos"],
                                     backbone_options=tiny)
        batches = Batches()
        config = TrainerConfig(max_epochs=3, batch_size=4, progress=False, device="cpu", group_by_length=True,
                               cache=cache)
        trainer = polygraft.Trainer(config, callbacks=[batches])
        trainer.fit(task, train_data=ListSource(rows), val_data=ListSource(rows[:12]))
        return batches, trainer, task.state_dict()

    cached, trainer, weights = fit("auto")
    assert [(s.split, s.kind) for s in trainer.loaders.cache.splits] == [("train", "memory"), ("val", "memory")]
    plain, _, plain_weights = fit(False)
    assert len(cached.seen) == 24 and cached.seen == plain.seen
    assert all(torch.equal(weights[k], plain_weights[k]) for k in weights)


class Masks(Callback):
    def __init__(self) -> None:
        self.by_epoch: list[dict[int, list[int]]] = []

    def on_train_epoch_start(self, trainer, epoch) -> None:
        self.by_epoch.append({})

    def on_train_batch_end(self, trainer, batch, output) -> None:
        for row, index in enumerate(batch["meta"]["index"].tolist()):
            self.by_epoch[-1][index] = batch["labels"][row].tolist()  # which positions were masked


def test_mlm_keeps_token_ids_but_draws_new_masks_every_epoch(catalog, tiny) -> None:
    rows = [{"text": f"the film number {i} was very good and then it was not good at all"} for i in range(16)]
    objective = polygraft.create_objective("mlm", backbone="bert", backbone_options=tiny, catalog=catalog,
                                           mask_probability=0.5)
    assert objective.data_pipeline(training=True).deterministic() is True  # prepare only tokenizes
    masks = Masks()
    trainer = polygraft.Trainer(TrainerConfig(max_epochs=2, batch_size=4, progress=False, device="cpu"),
                                callbacks=[masks])
    trainer.fit(objective, train_data=ListSource(rows))
    assert [(s.split, s.kind) for s in trainer.loaders.cache.splits] == [("train", "memory")]
    first, second = masks.by_epoch
    assert sorted(first) == sorted(second) == list(range(16))
    assert sum(first[i] != second[i] for i in range(16)) >= 14  # fresh masks each epoch from the kept ids

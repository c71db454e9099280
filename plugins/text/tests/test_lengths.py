"""Token lengths for length-grouped batching, and a text fine-tune with trainer.group_by_length."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import polygraft
from polygraft.errors import DataError
from polygraft.interfaces import ListSource
from polygraft.training.config import TrainerConfig

EXAMPLES = [
    {"text": "the cat"},
    {"text": "a dog", "text_pair": "sat on the mat"},
    {"tokens": ["new", "york", "cats"]},
    {"text": "the cat sat on the mat in paris and the dog ran to the park"},  # truncated at max_length 8
    {"text": ""},
]


def test_lengths_match_the_tokenized_examples_and_do_not_count_truncation(catalog, tiny) -> None:
    pre = polygraft.create_backbone("bert", catalog=catalog, **{**tiny, "max_length": 8}).preprocessor
    lengths = pre.lengths(EXAMPLES)
    assert pre.truncation["examples"] == 0  # measuring is not training: nothing counted twice
    assert lengths == [len(pre(example)["input_ids"]) for example in EXAMPLES]
    assert lengths == [4, 9 - 1, 6, 8, 2]  # the pair is truncated to 8 as well


def test_bad_example_in_lengths_names_its_origin(catalog, tiny) -> None:
    pre = polygraft.create_backbone("bert", catalog=catalog, **tiny).preprocessor
    with pytest.raises(DataError, match=r"reviews\.csv:7"):
        pre.lengths([{"text": "fine"}, {"text": 3, "_origin": "reviews.csv:7"}])


def test_finetune_with_group_by_length_batches_similar_lengths(catalog, tiny) -> None:
    # five lengths (8, 12, 16, 20, 24 tokens with [CLS]/[SEP]), ten examples each, in a scrambled order
    rows = [{"text": " ".join(["the", "film", "was", "very"][: 2 + i % 3] * (1 + i % 5)) + " good",
             "label": "pos" if i % 2 else "neg"} for i in range(50)]
    task = polygraft.create_task("classification", backbone="bert", catalog=catalog, label_names=["neg", "pos"],
                                 backbone_options=tiny)
    seen: list[tuple[bool, list[int]]] = []

    def record(module, args, kwargs):
        seen.append((task.training, kwargs["attention_mask"].sum(1).tolist()))

    task.backbone.model.register_forward_pre_hook(record, with_kwargs=True)
    config = TrainerConfig(max_epochs=2, batch_size=5, lr=1e-3, progress=False, device="cpu",
                           group_by_length=True)
    polygraft.Trainer(config).fit(task, train_data=ListSource(rows), val_data=ListSource(rows[:20]))
    train = [lengths for training, lengths in seen if training]
    assert len(train) == 20 and sorted(n for b in train for n in b) == sorted(
        len(task.backbone.preprocessor(r)["input_ids"]) for r in rows * 2)
    assert all(max(b) - min(b) <= 4 for b in train)  # neighbours in length order, never 8 next to 24
    widths = [max(lengths) for training, lengths in seen if not training]
    assert len(widths) == 8  # two validations of 4 batches, each visited longest first
    assert widths[:4] == widths[4:] == sorted(widths[:4], reverse=True) and widths[0] > widths[3]


def test_truncated_evaluation_inputs_are_counted_in_the_metrics(catalog, tiny) -> None:
    task = polygraft.create_task("classification", backbone="bert", catalog=catalog, label_names=["neg", "pos"],
                                 backbone_options={**tiny, "max_length": 8})
    long = "the cat sat on the mat in paris and the dog ran to the park"
    val = ListSource([{"text": long, "label": "pos"}, {"text": "the cat", "label": "neg"},
                      {"text": long + " again", "label": "neg"}])
    trainer = polygraft.Trainer(TrainerConfig(max_steps=1, batch_size=2, progress=False, device="cpu"))
    metrics = trainer.fit(task, train_data=ListSource([{"text": "a dog", "label": "pos"}] * 2), val_data=val).metrics
    assert metrics["val/truncated_examples"] == 2
    assert trainer.results["train/truncated_examples"] == 0  # the training texts fit


def test_a_long_training_row_is_counted_once_however_many_epochs(catalog, tiny, tmp_path) -> None:
    task = polygraft.create_task("classification", backbone="bert", catalog=catalog, label_names=["neg", "pos"],
                                 backbone_options={**tiny, "max_length": 8})
    long = "the cat sat on the mat in paris and the dog ran to the park"
    train = ListSource([{"text": long, "label": "pos"}, {"text": "the cat", "label": "neg"},
                        {"text": "a dog", "label": "pos"}, {"text": "the mat", "label": "neg"}])
    trainer = polygraft.Trainer(TrainerConfig(max_epochs=5, batch_size=2, progress=False, device="cpu"),
                                output_dir=tmp_path)
    trainer.fit(task, train_data=train)
    results = __import__("json").loads((tmp_path / "results.json").read_text())
    assert trainer.state.global_step == 10 and results["train/truncated_examples"] == 1  # one row, seen 5 times


def test_group_by_length_under_torchrun_with_two_ranks(vocab_file, tmp_path) -> None:
    script = Path(__file__).with_name("train_grouped.py")
    torchrun = str(Path(sys.executable).with_name("torchrun"))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}
    process = subprocess.Popen([torchrun, "--standalone", "--nproc-per-node", "2", str(script), str(vocab_file),
                                str(tmp_path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                               start_new_session=True)
    try:
        _, err = process.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)  # no orphaned ranks
        pytest.fail(f"torchrun did not finish:\n{process.communicate()[1][-3000:]}")
    assert process.returncode == 0, err[-3000:]
    ranks = [json.loads((tmp_path / f"batches_rank{r}.json").read_text()) for r in range(2)]
    assert len(ranks[0]) == len(ranks[1]) == 10  # 19 examples per rank (one repeated), batches of 4, 2 epochs
    # at each full step the two ranks hold alternate examples of one length-sorted global batch of 8
    full = [(a, b) for a, b in zip(*ranks, strict=True) if len(a) == len(b) == 4]
    assert len(full) == 8
    for a, b in full:
        merged = [n for pair in zip(a, b, strict=True) for n in pair]
        assert merged == sorted(merged, reverse=True), (a, b)
    assert "val/accuracy" in json.loads((tmp_path / "results.json").read_text())


def test_truncated_evaluation_inputs_are_counted_for_token_classification_too(catalog, tiny) -> None:
    task = polygraft.create_task("token-classification", backbone="bert", catalog=catalog,
                                 label_names=["O", "B-LOC", "I-LOC"], backbone_options={**tiny, "max_length": 6})
    short = {"tokens": ["in", "paris"], "tags": ["O", "B-LOC"]}
    long = {"tokens": ["the", "cat", "sat", "on", "the", "mat", "in", "paris"], "tags": ["O"] * 6 + ["O", "B-LOC"]}
    trainer = polygraft.Trainer(TrainerConfig(max_steps=1, batch_size=2, progress=False, device="cpu"))
    metrics = trainer.fit(task, train_data=ListSource([short] * 2), val_data=ListSource([long, short, long])).metrics
    assert metrics["val/truncated_examples"] == 2
    assert "val/f1" in metrics

"""CTC recognition: vocabulary from training transcripts, learning on a toy sequence task, decoding, and WER/CER
checked against jiwer on the same predictions (also in awkward batch orders)."""

from __future__ import annotations

import random

import jiwer
import pytest
import torch

import polygraft
from polygraft.errors import DataError
from polygraft.interfaces import ListSource
from polygraft.tasks.ctc import CTCTask, greedy_decode

ALPHABET = "abc "


def spoken(text: str, frames_per_char: int = 2) -> list[list[float]]:
    """A toy 'recording' of text: each character as a few one-hot frames, a silent (zero) frame between."""
    rows = []
    for char in text:
        one_hot = [1.0 if char == c else 0.0 for c in ALPHABET]
        rows += [one_hot] * frames_per_char + [[0.0] * len(ALPHABET)]
    return rows


def toy_source(count: int, seed: int) -> ListSource:
    rng = random.Random(seed)
    examples = []
    for _ in range(count):
        text = " ".join("".join(rng.choice("abc") for _ in range(rng.randint(1, 3))) for _ in range(rng.randint(1, 2)))
        examples.append({"x": spoken(text), "transcript": text})
    return ListSource(examples)


def make_task(train: ListSource, **options) -> CTCTask:
    torch.manual_seed(0)
    labels = CTCTask.labels_from_data(train)
    return polygraft.create_task("ctc", backbone="toy", label_names=labels, dropout=0.0,
                                 backbone_options={"in_features": len(ALPHABET), "hidden": 32}, **options)


def test_vocabulary_comes_from_training_transcripts() -> None:
    source = ListSource([{"transcript": "Ab  c"}, {"transcript": "b"}])
    assert CTCTask.labels_from_data(source) == ["<blank>", "<unk>", " ", "a", "b", "c"]
    assert CTCTask.labels_from_data(source, lowercase=False) == ["<blank>", "<unk>", " ", "A", "b", "c"]
    with pytest.raises(DataError, match="no 'transcript'"):
        CTCTask.labels_from_data(ListSource([{"text": "x"}]))


def test_ctc_learns_a_toy_sequence_task_and_decodes_it(tmp_path) -> None:
    train, val = toy_source(160, seed=0), toy_source(40, seed=1)
    task = make_task(train)
    trainer = polygraft.Trainer(polygraft.TrainerConfig(max_steps=300, batch_size=16, lr=3e-3, progress=False,
                                                        eval_every=300), output_dir=tmp_path)
    metrics = trainer.fit(task, train_data=train, val_data=val).metrics
    assert metrics["val/cer"] < 0.1 and metrics["val/wer"] < 0.3
    reloaded = polygraft.load(tmp_path)
    batch = reloaded.collate([reloaded.prepare_example({"x": spoken("ab c")})])
    assert reloaded.predict(batch)[0]["transcript"] == "ab c"


def test_error_rates_match_jiwer_in_any_batch_order() -> None:
    train = toy_source(30, seed=0)
    task = make_task(train)
    rng = random.Random(3)
    references = [example["transcript"] for example in toy_source(30, seed=5).examples]
    # predictions as the decoders emit them: whitespace collapsed and stripped, like the references
    predictions = [" ".join("".join(c for c in ref if rng.random() > 0.2).split()) or "a" for ref in references]
    expected_wer, expected_cer = jiwer.wer(references, predictions), jiwer.cer(references, predictions)
    order = sorted(range(len(references)), key=lambda i: len(references[i]))  # batches ordered by length
    for sizes in ([30], [1, 29], [7, 7, 7, 9]):
        task.reset_metrics()
        start = 0
        for size in sizes:
            chunk = order[start:start + size]
            start += size
            task.metrics.update([predictions[i] for i in chunk], [references[i] for i in chunk])
        computed = {k: float(v) for k, v in task.metrics.compute().items()}
        assert computed["wer"] == pytest.approx(expected_wer, rel=1e-6)
        assert computed["cer"] == pytest.approx(expected_cer, rel=1e-6)


def test_unknown_characters_are_mapped_and_counted_and_too_long_transcripts_refused() -> None:
    train = toy_source(20, seed=0)
    task = make_task(train)
    pipeline = task.data_pipeline(training=False)
    item = pipeline.prepare({"x": spoken("ab"), "transcript": "abz!"})
    assert item["target"][-2:] == [1, 1] and item["unknown"] == 2
    batch = pipeline.collate([item])
    with torch.no_grad():
        task.eval()
        task.update_metrics(batch, task(batch))
    assert task.compute_metrics()["unknown_characters"] == 2
    long = pipeline.collate([pipeline.prepare({"x": spoken("a"), "transcript": "abcabcabc"})])
    with pytest.raises(DataError, match="more characters than the model has frames"):
        task(long)


def test_greedy_merges_repeats_and_drops_blanks_and_beam_agrees_on_clear_cases() -> None:
    labels = ["<blank>", "<unk>", " ", "a", "b"]
    frames = [3, 3, 0, 3, 4, 4, 2, 4]  # a a _ a b b ' ' b  -> "aab b"
    log_probs = torch.full((1, len(frames), len(labels)), -20.0)
    for t, k in enumerate(frames):
        log_probs[0, t, k] = 0.0
    lengths = torch.tensor([len(frames)])
    assert greedy_decode(log_probs, lengths, labels) == ["aab b"]
    task = polygraft.create_task("ctc", backbone="toy", label_names=labels, decoder="beam",
                                 backbone_options={"in_features": 2})
    assert task.decode(log_probs.log_softmax(-1), lengths) == ["aab b"]

"""Task ``token-classification`` on the text backbone: alignment, seqeval metrics, spans, learning, save/load."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import polygraft
from polygraft.errors import DataError, IncompatibleComponentsError
from polygraft.model_io import save_model
from polygraft.tasks.token_classification import IGNORE, spans_from_tags

TAGS = ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]
SENTENCES = [
    {"tokens": ["john", "smith", "lives", "in", "new", "york"], "tags": ["B-PER", "I-PER", "O", "O", "B-LOC", "I-LOC"]},
    {"tokens": ["the", "cats", "sat", "in", "paris"], "tags": ["O", "O", "O", "O", "B-LOC"]},
    {"tokens": ["john", "went", "to", "the", "park"], "tags": ["B-PER", "O", "O", "O", "O"]},
]


@pytest.fixture
def task(catalog, tiny):
    torch.manual_seed(0)
    return polygraft.create_task("token-classification", backbone="bert", label_names=TAGS,
                                 backbone_options=tiny, catalog=catalog)


def test_labels_on_first_subtoken_only(task) -> None:
    pipe = task.data_pipeline(training=True)
    item = pipe.prepare(SENTENCES[1])  # "cats" -> cat ##s
    assert item["inputs"]["word_ids"] == [-1, 0, 1, 1, 2, 3, 4, -1]
    assert item["labels"] == [IGNORE, 0, 0, IGNORE, 0, 0, 1, IGNORE]
    batch = pipe.collate([pipe.prepare(s) for s in SENTENCES])
    assert batch["labels"].shape == batch["inputs"]["input_ids"].shape


def test_bad_examples(task) -> None:
    pipe = task.data_pipeline(training=True)
    with pytest.raises(DataError, match="2 tags for 1 words"):
        pipe.prepare({"tokens": ["john"], "tags": ["B-PER", "O"], "_origin": "x.conll:3"})
    with pytest.raises(DataError, match="never seen"):
        pipe.prepare({"tokens": ["john"], "tags": ["B-ORG"]})


def test_needs_sequence_features(catalog) -> None:
    from polygraft.specs import BackboneSpec

    only_pooled = BackboneSpec(name="pooled-only", factory="x:y", produces=("pooled",))
    with pytest.raises(IncompatibleComponentsError, match="sequence"):
        polygraft.api.check_compatible(catalog.get("task", "token-classification"), only_pooled)


def test_seqeval_metrics_accumulate_per_batch(task) -> None:
    pipe = task.data_pipeline(training=False)
    batch = pipe.collate([pipe.prepare(s) for s in SENTENCES])
    logits = torch.full((*batch["labels"].shape, len(TAGS)), -5.0)
    for row, pos in ((r, p) for r in range(3) for p in range(batch["labels"].shape[1])):
        gold = int(batch["labels"][row, pos])
        logits[row, pos, max(gold, 0)] = 5.0
    logits[0, 5, :] = -5.0
    logits[0, 5, 0] = 5.0  # "new" predicted O: the LOC "new york" is broken
    task.reset_metrics()
    task.update_metrics(batch, polygraft.interfaces.StepOutput(loss=torch.tensor(0.0), outputs=logits))
    metrics = task.compute_metrics()
    assert metrics["precision"] == pytest.approx(3 / 3) and metrics["recall"] == pytest.approx(3 / 4)
    assert metrics["f1_PER"] == 1.0 and metrics["f1_LOC"] == pytest.approx(2 / 3)
    assert "LOC" in task.entity_report()
    task.reset_metrics()
    assert task.compute_metrics() == {}


def test_metrics_gather_tag_sequences_across_ranks(tmp_path, monkeypatch) -> None:
    """Two gloo processes each validate a shard; both must report the metrics of all sentences."""
    import torch.multiprocessing as mp

    monkeypatch.syspath_prepend(str(Path(__file__).parent))  # spawned children import the worker module
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    import ddp_worker

    mp.spawn(ddp_worker.run, args=(2, str(tmp_path / "store"), str(tmp_path)), nprocs=2, join=True)
    results = [json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in range(2)]
    assert results[0] == results[1]
    metrics = results[0]
    # rank 1 alone would have recall 1.0; over both ranks one LOC of four entities is missed
    assert metrics["precision"] == pytest.approx(1.0) and metrics["recall"] == pytest.approx(3 / 4)
    assert metrics["f1_LOC"] == pytest.approx(2 / 3) and metrics["f1_PER"] == 1.0
    assert metrics["accuracy"] == pytest.approx(15 / 16)


def test_learns_and_predicts_spans_with_char_offsets(task, tmp_path) -> None:
    pipe = task.data_pipeline(training=True)
    batch = pipe.collate([pipe.prepare(s) for s in SENTENCES])
    optimizer = torch.optim.AdamW(task.parameters(), lr=3e-3)
    task.train()
    for _ in range(60):
        loss = task(batch).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    task.eval()
    task.reset_metrics()
    with torch.no_grad():
        task.update_metrics(batch, task(batch))
    assert task.compute_metrics()["f1"] == 1.0
    text = "John Smith lives in New York."
    raw = task.collate([task.prepare_example({"text": text})])
    entities = task.predict(raw)[0]["entities"]
    assert [(e["type"], e["text"]) for e in entities] == [("PER", "John Smith"), ("LOC", "New York")]
    assert text[entities[1]["start"]:entities[1]["end"]] == "New York"
    words = task.predict(task.collate([task.prepare_example({"tokens": SENTENCES[0]["tokens"]})]))[0]
    assert words["entities"][0]["words"] == [0, 1] and words["entities"][0]["text"] == "john smith"
    reloaded = polygraft.load(save_model(task, tmp_path / "model"))
    assert reloaded.predict(raw)[0]["entities"] == entities


def test_spans_from_tags() -> None:
    assert spans_from_tags(["O", "B-PER", "I-PER", "B-LOC"]) == [("PER", 1, 2), ("LOC", 3, 3)]

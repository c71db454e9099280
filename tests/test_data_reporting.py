"""Nothing is dropped silently and data mistakes fail before training: every split's skips are printed, saved in
results.json and the --json output; unknown labels in val/test stop the run before the first step; a failing
final evaluation never loses the trained model; data errors read the same with DataLoader workers."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

import polygraft
from polygraft.cli import main
from polygraft.errors import DataError
from polygraft.interfaces import ListSource


def write_csv(path: Path, rows: list[tuple[str, str]]) -> str:
    path.write_text("text,label\n" + "".join(f"{text},{label}\n" for text, label in rows))
    return str(path)


def text_recipe(tmp_path: Path, vocab: Path, test_rows: list[tuple[str, str]]) -> Path:
    good = [("the cat", "a"), ("the dog", "b")] * 4
    recipe = {
        "task": "classification", "backbone": "bert",
        "backbone_options": {"tokenizer": str(vocab), "hidden_size": 16, "num_hidden_layers": 1,
                             "num_attention_heads": 2, "intermediate_size": 32},
        "data": {
            "train": {"dataset": "text-csv", "path": write_csv(tmp_path / "train.csv", [*good, (" ", "a")]),
                      "skip_invalid": True},
            "val": {"dataset": "text-csv", "path": write_csv(tmp_path / "val.csv", good)},
            "test": {"dataset": "text-csv", "path": write_csv(tmp_path / "test.csv", test_rows),
                     "skip_invalid": True},
        },
        "trainer": {"max_steps": 2, "batch_size": 4, "progress": False},
        "output_dir": str(tmp_path / "run"),
    }
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


@pytest.fixture
def vocab(tmp_path: Path) -> Path:
    path = tmp_path / "vocab.txt"
    path.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "cat", "dog"]) + "\n")
    return path


def test_every_splits_skips_are_printed_saved_and_in_json(tmp_path, vocab, capsys) -> None:
    recipe = text_recipe(tmp_path, vocab, [("the cat", "a"), ("", "b"), ("the dog", "b"), ("x,y", "a")])
    assert main(["finetune", str(recipe), "--json"]) == 0
    captured = capsys.readouterr()
    out = json.loads(captured.out)
    assert "data.train: skipped 1 example(s): empty text" in captured.err
    assert "data.test: skipped 1 example(s): empty text (first: " in captured.err and "test.csv:3" in captured.err
    assert "data.test: skipped 1 example(s): wrong field count" in captured.err
    assert out["skipped"]["test"]["total"] == 2 and out["skipped"]["train"]["total"] == 1
    assert out["skipped"]["val"]["total"] == 0
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["skipped"]["test"]["reasons"]["wrong field count"]["first"] == [f"{tmp_path / 'test.csv'}:5"]
    assert main(["evaluate", str(tmp_path / "run"), "--json"]) == 0
    captured = capsys.readouterr()
    evaluated = json.loads(captured.out)
    assert evaluated["skipped"]["test"]["total"] == 2 and "data.test: skipped" in captured.err


def test_an_unknown_test_label_stops_before_training(tmp_path, vocab, capsys) -> None:
    recipe = text_recipe(tmp_path, vocab, [("the cat", "a"), ("the dog", "zebra")])
    assert main(["finetune", str(recipe)]) == 2
    err = capsys.readouterr().err
    # the first unseen label with the file and row it is on (in-memory CSV rows know their origin)
    assert re.search(r"test.csv:\d+: label 'zebra' of data.test was never seen in training; known labels:", err), err
    assert not err.rstrip().endswith(":")
    assert not (tmp_path / "run" / "checkpoints").exists()  # no training step was taken


def test_a_failing_test_evaluation_keeps_the_trained_model(tmp_path) -> None:
    data = polygraft.load_dataset("synthetic-classification", size=16, in_features=4)
    task = polygraft.create_task("classification", backbone="toy", label_names=data.label_names,
                                 backbone_options={"in_features": 4})
    broken = ListSource([{"label": "class_0", "_origin": "test.jsonl:7"}], label_names=data.label_names)
    trainer = polygraft.Trainer(polygraft.TrainerConfig(max_steps=2, batch_size=4, progress=False),
                                output_dir=tmp_path)
    with pytest.raises(DataError, match=r"test\.jsonl:7"):
        trainer.fit(task, train_data=data, test_data=broken)
    assert polygraft.load(tmp_path).label_names == data.label_names  # saved before the test split failed


@pytest.mark.parametrize("workers", [0, 1])
def test_data_errors_read_the_same_with_workers(tmp_path, workers) -> None:
    rows = [{"x": [0.0, 1.0, 2.0, 3.0], "label": "a"}] * 6 + [{"x": [1.0], "label": "b", "_origin": "rows.jsonl:7"}]
    task = polygraft.create_task("classification", backbone="toy", label_names=["a", "b"],
                                 backbone_options={"in_features": 4})
    trainer = polygraft.Trainer(polygraft.TrainerConfig(max_steps=4, batch_size=7, num_workers=workers,
                                                        progress=False))
    with pytest.raises(DataError) as info:
        trainer.fit(task, train_data=ListSource(rows))
    message = str(info.value)
    assert message == "rows.jsonl:7: expected 4 features, got 1"
    assert "Caught" not in message and "Traceback" not in message

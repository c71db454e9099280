"""``polygraft predict RUN --field NAME=VALUE``: one example from named fields through Preprocessor.read_fields."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from polygraft.builtin.toy import VectorPreprocessor
from polygraft.cli import main
from polygraft.interfaces import Preprocessor
from polygraft.model_io import save_model


def test_read_fields_keeps_fields_and_reads_the_input_key_with_read_input() -> None:
    assert Preprocessor().read_fields({"question": "who?", "context": "ada"}) == {"question": "who?",
                                                                               "context": "ada"}
    toy = VectorPreprocessor(in_features=2)
    assert toy.read_fields({"x": "[1.0, 2.0]", "note": "n"}) == {"x": [1.0, 2.0], "note": "n"}


@pytest.fixture
def run(tmp_path: Path) -> Path:
    import polygraft

    task = polygraft.create_task("classification", backbone="toy", label_names=["a", "b"],
                                 backbone_options={"in_features": 3})
    save_model(task, tmp_path / "run" / "model")
    return tmp_path / "run"


def test_predict_builds_one_example_from_fields(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["predict", str(run), "--field", "x=[0.0, 1.0, 2.0]", "--field", "note=a=b", "--json"]) == 0
    (result,) = json.loads(capsys.readouterr().out)  # always a list, one entry per example
    assert result["input"] == {"x": "[0.0, 1.0, 2.0]", "note": "a=b"} and result["label"] in {"a", "b"}
    assert main(["predict", str(run), "[0.0, 1.0, 2.0]", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["label"] == result["label"]
    # inputs and a --field example together: one prediction each, in that order
    assert main(["predict", str(run), "[0.0, 1.0, 2.0]", "--field", "x=[0.0, 1.0, 2.0]", "--json"]) == 0
    both = json.loads(capsys.readouterr().out)
    assert [entry["label"] for entry in both] == [result["label"]] * 2


@pytest.mark.parametrize(("argv", "message"), [
    ([], "give something to predict"),
    (["--field", "x"], "NAME=VALUE"),
    (["--field", "x=[1]", "--field", "x=[2]"], "given twice"),
])
def test_field_mistakes_are_clear(run: Path, argv: list[str], message: str,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["predict", str(run), *argv]) == 2
    assert message in capsys.readouterr().err

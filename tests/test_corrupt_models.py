"""Corrupt or tampered models and checkpoints give polygraft's own errors naming the file, never a library
traceback, and nothing is ever unpickled."""

from __future__ import annotations

import json
import os
import pickle
import shutil
from pathlib import Path

import pytest
import yaml

import polygraft
from polygraft.cli import main
from polygraft.errors import TrainingError, WeightsError

RECIPE = {
    "task": "classification", "backbone": "toy", "backbone_options": {"in_features": 4},
    "data": {"train": {"dataset": "synthetic-classification", "size": 16, "in_features": 4}},
    "trainer": {"max_steps": 2, "batch_size": 8, "progress": False},
}


class Sneaky:
    """A pickle that would run a function when unpickled (harmless here: os.getcwd)."""

    def __reduce__(self):
        return (os.getcwd, ())


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("trained") / "run"
    path = run.parent / "recipe.yaml"
    path.write_text(yaml.safe_dump({**RECIPE, "output_dir": str(run)}))
    assert main(["finetune", str(path)]) == 0
    return run


@pytest.fixture
def run(trained, tmp_path) -> Path:
    copy = tmp_path / "run"
    shutil.copytree(trained, copy)
    return copy


def test_weights_replaced_by_a_pickle_are_refused(run) -> None:
    (run / "model" / "model.safetensors").write_bytes(pickle.dumps(Sneaky()))
    with pytest.raises(WeightsError, match=r"model\.safetensors: not a valid safetensors file.*never unpickles"):
        polygraft.load(run)


def test_truncated_and_missing_weights(run) -> None:
    weights = run / "model" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(WeightsError, match="not a valid safetensors file"):
        polygraft.load(run)
    weights.unlink()
    with pytest.raises(WeightsError, match=r"model\.safetensors is missing"):
        polygraft.load(run)


def test_model_description_without_its_keys(run) -> None:
    config_file = run / "model" / "polygraft.json"
    config = json.loads(config_file.read_text())
    config.pop("kind")
    config_file.write_text(json.dumps(config))
    with pytest.raises(WeightsError, match=r"polygraft\.json: 'kind' must be one of"):
        polygraft.load(run)
    config_file.write_bytes(b"\xff\xfe not json")
    with pytest.raises(WeightsError, match="cannot read the model description"):
        polygraft.load(run)


def test_the_same_through_weights_of_a_new_finetune(run, tmp_path, capsys) -> None:
    (run / "model" / "model.safetensors").write_bytes(pickle.dumps(Sneaky()))
    path = tmp_path / "again.yaml"
    path.write_text(yaml.safe_dump({**RECIPE, "weights": str(run), "output_dir": str(tmp_path / "again")}))
    assert main(["finetune", str(path)]) == 2
    err = capsys.readouterr().err
    assert "model.safetensors: not a valid safetensors file" in err and "Traceback" not in err


def test_a_malicious_checkpoint_is_refused_on_resume(run, tmp_path, capsys) -> None:
    with open(run / "checkpoints" / "last.pt", "wb") as handle:
        pickle.dump(Sneaky(), handle)
    recipe = run / "config.yaml"
    assert main(["finetune", str(recipe), "resume=last", "trainer.max_steps=3", f"output_dir={run}"]) == 2
    err = capsys.readouterr().err
    assert "last.pt: not a readable polygraft checkpoint" in err
    assert "weights_only=False" not in err and "Traceback" not in err
    with pytest.raises(TrainingError, match="never loads arbitrary pickled objects"):
        from polygraft.training.checkpoint import load_checkpoint

        load_checkpoint(run / "checkpoints" / "last.pt")


def test_a_hugging_face_folder_with_a_pickled_bin_is_refused(tmp_path) -> None:
    from transformers import BertConfig

    folder = tmp_path / "hf"
    folder.mkdir()
    BertConfig(vocab_size=10, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
               intermediate_size=16).save_pretrained(folder)
    (folder / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "b"]) + "\n")
    with open(folder / "pytorch_model.bin", "wb") as handle:
        pickle.dump(Sneaky(), handle)
    with pytest.raises(WeightsError, match="never unpickles"):
        polygraft.create_backbone("bert", weights=str(folder))

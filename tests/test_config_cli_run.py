"""Recipes: YAML with safe_load, dotted overrides, unknown keys; finetune / evaluate / predict commands."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from polygraft.cli import main
from polygraft.errors import ConfigError
from polygraft.recipe import Recipe

RECIPE = {
    "task": "classification",
    "backbone": "toy",
    "backbone_options": {"in_features": 6, "hidden": 16},
    "data": {
        "train": {"dataset": "synthetic-classification", "size": 96, "in_features": 6, "seed": 1},
        "val": {"dataset": "synthetic-classification", "size": 30, "in_features": 6, "seed": 1},
        "test": {"dataset": "synthetic-classification", "size": 30, "in_features": 6, "seed": 1},
    },
    "strategy": ["full"],
    "trainer": {"max_epochs": 3, "batch_size": 16, "lr": 0.005},
}


def write_recipe(tmp_path: Path, **changes) -> Path:
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump({**RECIPE, "output_dir": str(tmp_path / "run"), **changes}))
    return path


def test_overrides_are_parsed_as_yaml_values() -> None:
    cfg = Recipe.from_dict(RECIPE, overrides=["trainer.max_steps=5", "trainer.lr=1e-4", "weights=null",
                                                 "data.train.size=10", "strategy=[linear-probe, ema]"])
    assert cfg.trainer.max_steps == 5 and cfg.trainer.lr == pytest.approx(1e-4)
    assert cfg.data["train"]["size"] == 10
    assert cfg.strategy == ["linear-probe", "ema"]
    assert cfg.dataset_options("val") == ("synthetic-classification", {"size": 30, "in_features": 6, "seed": 1,
                                                                      "split": "val"})



def test_a_split_set_to_null_is_dropped_but_train_is_required() -> None:
    cfg = Recipe.from_dict(RECIPE, overrides=["data.val=null"])
    assert set(cfg.data) == {"train", "test"}
    with pytest.raises(ConfigError, match=r"data\.train must be a mapping"):
        Recipe.from_dict(RECIPE, overrides=["data.train=null"])


@pytest.mark.parametrize(("change", "message"), [
    (["trainr.max_steps=3"], "unknown key 'trainr'; did you mean 'trainer'"),
    (["trainer.max_step=3"], "unknown key 'max_step'; did you mean 'max_steps'"),
    (["data.tain={dataset: x}"], "unknown key 'tain'; did you mean 'train'"),
    (["objective=mlm"], "exactly one of 'task'"),
    (["trainer.precision=fp4"], "precision"),
    (["max_steps"], "must look like key.sub=value"),
])
def test_bad_recipes_say_what_to_do(change: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Recipe.from_dict(RECIPE, overrides=change)


def test_yaml_is_read_safely(tmp_path: Path) -> None:
    path = tmp_path / "evil.yaml"
    path.write_text("task: !!python/object/apply:os.system ['echo hacked']\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        Recipe.from_yaml(path)


def test_finetune_evaluate_predict_from_the_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    recipe = write_recipe(tmp_path)
    assert main(["finetune", str(recipe), "trainer.max_epochs=4", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    run = Path(out["run_dir"])
    assert out["metrics"]["test/accuracy"] > 0.8
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["trainer"]["max_epochs"] == 4 and saved["trainer"]["warmup_ratio"] == 0.0  # resolved defaults
    results = json.loads((run / "results.json").read_text())
    assert results["test/accuracy"] == pytest.approx(out["metrics"]["test/accuracy"])

    assert main(["evaluate", str(run), "--json"]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    assert evaluated["split"] == "test"
    assert evaluated["metrics"]["test/accuracy"] == pytest.approx(results["test/accuracy"])

    assert main(["predict", str(run), json.dumps([0.0] * 6), "--json"]) == 0
    prediction, = json.loads(capsys.readouterr().out)  # --json is always a list, one entry per input
    assert prediction["label"] in {"class_0", "class_1", "class_2"}
    assert sum(prediction["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)


def test_pretrain_command_refuses_a_finetune_recipe(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pretrain", str(write_recipe(tmp_path))]) == 2
    assert "run it with `polygraft finetune`" in capsys.readouterr().err


def test_unknown_component_in_a_recipe_is_a_clean_cli_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["finetune", str(write_recipe(tmp_path, backbone="tyo"))]) == 2
    err = capsys.readouterr().err
    assert "unknown backbone 'tyo'" in err and "'toy' (from polygraft)" in err


def test_resume_last_continues_a_finished_run_to_more_steps(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    recipe = write_recipe(tmp_path)
    assert main(["finetune", str(recipe), "trainer.max_steps=6", "--json"]) == 0
    capsys.readouterr()
    assert main(["finetune", str(recipe), "trainer.max_steps=9", "resume=last", "--json"]) == 0
    run = Path(json.loads(capsys.readouterr().out)["run_dir"])
    assert json.loads((run / "results.json").read_text())["train/steps"] == 9

"""Every component's options are checked before anything is built, by one mechanism for every kind and plugin:
an unknown name gets the closest valid names, a wrong type says what is allowed; the CLI prints one line."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from polygraft.cli import main
from polygraft.errors import ConfigError
from polygraft.options import check_options
from polygraft.recipe import Recipe

TOY = {
    "task": "classification",
    "backbone": "toy",
    "backbone_options": {"in_features": 4},
    "data": {"train": {"dataset": "synthetic-classification", "size": 16, "in_features": 4}},
    "trainer": {"max_steps": 1, "batch_size": 4, "progress": False},
}


def run_cli(tmp_path: Path, recipe: dict, *overrides: str, capsys: pytest.CaptureFixture[str]) -> str:
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump({**recipe, "output_dir": str(tmp_path / "run")}))
    code = main(["finetune" if recipe.get("task") else "pretrain", str(path), *overrides])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    return err


@pytest.mark.parametrize(("override", "expected"), [
    ("data.train.skip_invalide=true", "has no option 'skip_invalide'"),
    ("task_options.dropuot=0.1", "has no option 'dropuot'; did you mean 'dropout'"),
    ("backbone_options.hiden=8", "has no option 'hiden'; did you mean 'hidden'"),
    ("trainer.batch_size=[4]", "'batch_size' must be int"),
    ("task_options.dropout=abc", "'dropout' must be float"),
    ("trainer.max_steps=2.5", "'max_steps' must be int | None, got 2.5"),
    ("trainer.progress=no-thanks", "'progress' must be bool"),
    ("strategy=[{name: full, trainable_layer: 1}]", "did you mean 'trainable_layers'"),
    ("callbacks=[{name: early-stopping, patienc: 2}]", "did you mean 'patience'"),
    ("callbacks=[{name: early-stoping}]", "Did you mean 'early-stopping'"),
    ("backbone_options.trainable_layers=1", "strategy: [{name: full, trainable_layers: 1}]"),
    ("trainer.monitor=val/accuracy", "trainer.monitor was removed; write callbacks: [{name: best-checkpoint"),
])
def test_bad_options_end_in_one_line_with_the_fix(tmp_path, capsys, override, expected) -> None:
    err = run_cli(tmp_path, TOY, override, capsys=capsys)
    assert expected in err, err


def test_options_are_checked_before_any_data_is_opened(tmp_path, capsys) -> None:
    recipe = {**TOY, "data": {"train": {"dataset": "synthetic-classification", "size": 16, "in_features": 4},
                              "test": {"dataset": "synthetic-classification", "split": "nope"}}}
    err = run_cli(tmp_path, recipe, "task_options.dropuot=0.1", capsys=capsys)
    assert "dropuot" in err  # the option typo is reported first, before the bad split would be
    assert not (tmp_path / "run").exists()  # nothing was trained or written


def test_plugin_options_are_checked_too(tmp_path, capsys) -> None:
    text = {**TOY, "data": {"train": {"dataset": "text-csv", "path": ""}}}
    assert "option 'path' must not be empty" in run_cli(tmp_path, text, capsys=capsys)
    missing = {**TOY, "data": {"train": {"dataset": "text-csv"}}}
    assert "needs the option 'path'" in run_cli(tmp_path, missing, capsys=capsys)
    skip = {**TOY, "data": {"train": {"dataset": "text-csv", "path": "a.csv", "skip_invalid": "no-thanks"}}}
    assert "'skip_invalid' must be bool" in run_cli(tmp_path, skip, capsys=capsys)
    timm = {**TOY, "backbone": "timm", "backbone_options": {"model_name": "test_resnet", "imagesize": 32}}
    assert "has no option 'imagesize'; did you mean 'image_size'" in run_cli(tmp_path, timm, capsys=capsys)
    mlm = {**TOY, "task": None, "objective": "mlm", "backbone": "bert", "backbone_options": {},
           "objective_options": {"mask_prob": 0.2}}
    assert "did you mean 'mask_probability'" in run_cli(tmp_path, mlm, capsys=capsys)


def test_an_unknown_timm_model_suggests_close_timm_names() -> None:
    import polygraft

    with pytest.raises(ConfigError, match="resnet10t"):
        polygraft.create_backbone("timm", model_name="resnet10x")


def test_yaml_strings_that_spell_numbers_and_booleans_are_converted() -> None:
    def factory(*, lr: float = 1.0, steps: int = 1, flag: bool = False, sizes: list[int] | None = None) -> None: ...

    assert check_options(factory, {"lr": "5e-5", "steps": "3", "flag": "yes", "sizes": [1, "2"]}, what="x") == {
        "lr": 5e-5, "steps": 3, "flag": True, "sizes": [1, 2]}
    assert Recipe.from_dict(TOY, overrides=["trainer.lr=1e-4"]).trainer.lr == pytest.approx(1e-4)


def test_values_that_are_not_plain_data_pass_through_unchecked() -> None:
    def factory(*, tokenizer: str | None = None) -> None: ...

    marker = object()
    assert check_options(factory, {"tokenizer": marker}, what="x")["tokenizer"] is marker

"""``polygraft compare`` on the toy backbone: the table, comparison.json, the PNG, and that a finished comparison
is reused and an interrupted variant resumes instead of training again."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from polygraft.cli import main
from polygraft.compare import plan_variants, read_variant_file
from polygraft.errors import ConfigError

TOY = {
    "task": "classification", "backbone": "toy", "backbone_options": {"in_features": 4},
    "data": {"train": {"dataset": "synthetic-classification", "size": 48, "in_features": 4},
             "test": {"dataset": "synthetic-classification", "size": 24, "in_features": 4}},
    "trainer": {"max_steps": 6, "batch_size": 16, "lr": 0.01},
}


def test_compare_table_json_png_reuse_and_resume(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    recipe = tmp_path / "toy.yaml"
    recipe.write_text(yaml.safe_dump(TOY))
    output = tmp_path / "cmp"
    argv = ["compare", str(recipe), "--vary", "strategy=full,linear-probe", "--output", str(output),
            "trainer.log_every=2"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "toy.strategy=full" in out and "toy.strategy=linear-probe" in out and "test/accuracy" in out
    comparison = json.loads((output / "comparison.json").read_text())
    rows = {row["variant"]: row for row in comparison["variants"]}
    full, probe = rows["toy.strategy=full"], rows["toy.strategy=linear-probe"]
    assert full["metric"] == "test/accuracy" and 0.0 <= full["value"] <= 1.0
    assert probe["params/trainable"] < full["params/trainable"] == full["params/total"]
    assert full["train/wall_time_s"] > 0 and full["memory/peak_mb"] > 0 and full["train/samples_per_s"] > 0
    assert (output / "comparison.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| toy.strategy=full |" in (output / "comparison.md").read_text()

    # an interrupted variant: results.json gone, its last checkpoint still there → it resumes, the other is reused
    probe_dir = Path(probe["runs"][0]["run_dir"])
    (probe_dir / "results.json").unlink()
    assert main([*argv, "--json"]) == 0
    again = {row["variant"]: row for row in json.loads(capsys.readouterr().out)["variants"]}
    assert again["toy.strategy=full"]["runs"][0]["status"] == "reused"
    assert again["toy.strategy=linear-probe"]["runs"][0]["status"] == "resumed"
    assert (probe_dir / "results.json").is_file()


def test_a_failing_variant_is_reported_and_the_others_still_run(tmp_path: Path, capsys) -> None:
    recipe = tmp_path / "toy.yaml"
    recipe.write_text(yaml.safe_dump(TOY))
    code = main(["compare", str(recipe), "--vary", "task_options.dropout=0.0,abc", "--output", str(tmp_path / "o")])
    assert code == 1
    text = capsys.readouterr().out
    assert "failed: toy.task_options.dropout=abc seed 0" in text and "'dropout' must be float" in text


def test_variant_planning_and_files(tmp_path: Path) -> None:
    variants = plan_variants(["a.yaml", "b.yaml"], vary=["weights=minilm-l6,null"], common=["trainer.max_steps=1"])
    assert [v.name for v in variants] == ["a.weights=minilm-l6", "a.weights=null", "b.weights=minilm-l6",
                                          "b.weights=null"]
    assert variants[1].overrides == ("trainer.max_steps=1", "weights=null")
    with pytest.raises(ConfigError, match="key=value1,value2"):
        plan_variants(["a.yaml"], vary=["strategy"])
    spec = tmp_path / "variants.yaml"
    spec.write_text("recipes: [a.yaml]\nseeds: [0, 1]\nvariants:\n  pretrained: {}\n  random: {weights: null}\n")
    recipes, named, seeds = read_variant_file(spec)
    planned = plan_variants(recipes, named=named)
    assert [v.name for v in planned] == ["pretrained", "random"] and planned[1].overrides == ("weights=null",)
    assert seeds == [0, 1]


def test_the_weights_column_names_the_weights_of_a_composed_backbone() -> None:
    from polygraft.compare_report import _describe

    base = {"task": "classification", "backbone": "spectrogram", "strategy": ["full"]}
    imagenet = _describe({**base, "backbone_options": {"image_weights": "efficientnet-lite0-imagenet"}})
    assert imagenet["weights"] == "image_weights=efficientnet-lite0-imagenet"
    assert _describe({**base, "backbone_options": {"image_weights": None}})["weights"] == "random init"
    assert _describe({**base, "weights": "whisper-tiny-en"})["weights"] == "whisper-tiny-en"


def test_a_child_that_wrote_its_results_is_not_failed_and_failures_say_why(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """A child that exits non-zero after writing results.json finished (it is reported with a note); a child that
    fails without results is reported with its exit status (or signal) and its error line, not a log line."""
    from polygraft.compare import last_error, run_variant
    from polygraft.compare_child import ChildResult
    from polygraft.compare_report import Variant

    recipe = tmp_path / "toy.yaml"
    recipe.write_text(yaml.safe_dump(TOY))
    variant = Variant("toy", str(recipe))

    def finished_then_crashed(command, *, log_file, **kwargs):
        run_dir = Path(next(arg for arg in command if arg.startswith("output_dir=")).split("=", 1)[1])
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "results.json").write_text(json.dumps({"test/accuracy": 0.5}))
        log_file.write_text("input cache: train: 48 prepared examples kept\n")
        return ChildResult(-9, log_file.read_text())

    monkeypatch.setattr("polygraft.compare.run_child", finished_then_crashed)
    outcome = run_variant(variant, 0, tmp_path / "a")
    assert outcome.status == "trained" and outcome.results == {"test/accuracy": 0.5}
    assert "killed by SIGKILL after writing its results" in outcome.note
    assert "input cache" in (tmp_path / "a" / "runs" / "toy-seed0" / "train.log").read_text()

    def failed(command, **kwargs):
        return ChildResult(2, "train:  40%|████ | 2/5\nerror: loss is nan at step 2\ninput cache: val: kept\n")

    monkeypatch.setattr("polygraft.compare.run_child", failed)
    outcome = run_variant(variant, 0, tmp_path / "b")
    assert outcome.status == "failed" and outcome.error.startswith("exit code 2: error: loss is nan at step 2")
    assert last_error("Traceback (most recent call last):\n  File x\nValueError: bad\n") == "ValueError: bad"

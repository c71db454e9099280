"""``polygraft recommend``: every shipped row is a recipe that exists and parses and says what it measured, and the
ranking follows the documented rules for data size and budget (docs/recommend.md)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from polygraft.cli import main
from polygraft.errors import ConfigError
from polygraft.plugins import build_catalog
from polygraft.recipe import Recipe
from polygraft.recommend import TABLE, load_rows, parse_budget, recommend

ROOT = Path(__file__).resolve().parents[1]


def test_every_shipped_row_is_a_recipe_that_parses_and_matches_what_the_row_says() -> None:
    rows = json.loads(TABLE.read_text())["rows"]
    catalog = build_catalog()
    assert len(rows) >= 20 and len({r["id"] for r in rows}) == len(rows)
    for row in rows:
        recipe = Recipe.from_yaml(ROOT / row["recipe"], row["overrides"])
        assert recipe.task == row["task"] and recipe.backbone == row["backbone"], row["id"]
        assert catalog.get("backbone", recipe.backbone).modality == row["modality"], row["id"]
        inner = {v for k, v in recipe.backbone_options.items() if k.endswith("weights") and v}
        assert row["weights"] == recipe.weights or row["weights"] in inner, row["id"]
        names = [s if isinstance(s, str) else s["name"] for s in recipe.strategy]
        assert "+".join(catalog.get("strategy", n).name for n in names) == row["strategy"], row["id"]
        assert row["metric"].split("/")[0] in ("val", "test"), row["id"]
        assert row["date"] and row["machine"] and row["command"] and (ROOT / row["source"].split("#")[0]).is_file()
        assert row["train_s"] > 0 and row["examples"] > 0 and row["device"] == "cpu"


def test_ranking_follows_data_size_and_budget() -> None:
    # plenty of examples and time: the best measured metric first (full fine-tuning of the ImageNet CNN, 3 epochs)
    vision = recommend(modality="vision", task="classification", examples=4000, budget="10m", limit=20)
    first = vision["options"][0]
    assert first["strategy"] == "full" and first["expected"] == pytest.approx(0.983)
    scores = [(o["group"], -o["score"], o["seconds"]) for o in vision["options"]]
    assert scores == sorted(scores)
    # a tight budget leaves only what fits: the probe (15 s measured)
    tight = recommend(modality="vision", task="classification", examples=4000, budget="30s")
    assert [o["strategy"] for o in tight["options"]] == ["linear-probe"]
    assert all(o["seconds"] > 30 for o in tight["over_budget"])
    # fewer examples: time shrinks with them, so the same budget admits more options
    fewer = recommend(modality="vision", task="classification", examples=1000, budget="30s", limit=20)
    assert len(fewer["options"]) > 1 and fewer["options"][0]["seconds"] < 30
    # under a few hundred examples, few-weight options (probe, LoRA) rank before full fine-tuning at the same metric
    speech = recommend(modality="speech", task="classification", examples=200, budget="10m", limit=20)
    strategies = [o["strategy"] for o in speech["options"]]
    assert strategies[:2] == ["linear-probe", "lora"] and "full" in strategies[2:]
    assert "few examples" in speech["options"][0]["reason"]
    # from 500 examples the metric decides again
    many = recommend(modality="speech", task="classification", examples=600, budget="1h", limit=20)
    assert all(o["group"] == 1 for o in many["options"]) and "few examples" not in many["options"][0]["reason"]
    values = [o["score"] for o in many["options"]]
    assert values == sorted(values, reverse=True)


def test_what_the_table_does_not_cover_is_said_not_guessed(capsys: pytest.CaptureFixture[str]) -> None:
    far = recommend(modality="speech", task="classification", examples=50_000, budget="10h")
    assert far["options"] == [] and "no speech classification measurement covers 50,000" in far["message"]
    assert recommend(modality="text", task="detection", examples=100, budget="1h")["message"].startswith(
        "the table has no measurement for text detection")
    gpu = recommend(modality="text", task="classification", examples=2000, budget="1h", device="cuda")
    assert gpu["options"] == [] and "measured on cpu only" in gpu["message"]
    with pytest.raises(ConfigError, match=r"too small for any measured vision classification option.*cheapest"):
        recommend(modality="vision", task="classification", examples=4000, budget="5s")
    for bad in ("ten minutes", "0s", "-3m"):
        with pytest.raises(ConfigError, match="budget"):
            parse_budget(bad)
    assert main(["recommend", "--modality", "speech", "--task", "classification", "--examples", "200",
                 "--budget", "10m", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["options"][0]["strategy"] == "linear-probe"
    assert main(["recommend", "--modality", "vision", "--task", "classification", "--examples", "4000",
                 "--budget", "5s"]) == 2
    assert "too small" in capsys.readouterr().err


def test_a_compare_output_extends_the_table(tmp_path: Path) -> None:
    run = tmp_path / "cmp" / "runs" / "toy-seed0"
    run.mkdir(parents=True)
    (run / "config.yaml").write_text("task: classification\nbackbone: toy\nstrategy: [full]\n")
    (run / "data.json").write_text(json.dumps({"train": {"size": 300}}))
    comparison = {"seeds": [0], "variants": [{
        "variant": "toy", "recipe": "toy.yaml", "overrides": [], "runs": [{"seed": 0, "status": "trained",
                                                                           "run_dir": str(run)}],
        "task": "classification", "backbone": "toy", "weights": "random init", "strategy": "full",
        "metric": "test/accuracy", "value": 0.9, "std": 0.0, "train/wall_time_s": 3.0, "memory/peak_mb": 300.0,
        "params/trainable": 100, "params/total": 100}]}
    (tmp_path / "cmp" / "comparison.json").write_text(json.dumps(comparison))
    rows = load_rows([tmp_path / "cmp"])
    mine = [r for r in rows if r["backbone"] == "toy"]
    assert len(mine) == 1 and mine[0]["examples"] == 300 and mine[0]["modality"] == "any"
    assert mine[0]["date"] and mine[0]["device"] == "unknown"
    answer = recommend(modality="any", task="classification", examples=300, budget="1m", tables=[tmp_path / "cmp"])
    assert answer["options"][0]["backbone"] == "toy" and "device not recorded" in answer["options"][0]["reason"]

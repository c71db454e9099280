"""The tensorboard and mlflow callbacks write what the run directory holds; read back with each library's reader."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import polygraft
from polygraft.errors import ConfigError
from polygraft.recipe import Recipe


def train(tmp_path: Path, callbacks: list, steps: int = 6, resume: str | None = None) -> Path:
    recipe = Recipe.from_dict({
        "task": "classification", "backbone": "toy", "backbone_options": {"in_features": 4},
        "data": {"train": {"dataset": "synthetic-classification", "size": 48, "in_features": 4},
                 "val": {"dataset": "synthetic-classification", "size": 16, "in_features": 4, "seed": 1}},
        "trainer": {"max_steps": steps, "batch_size": 8, "log_every": 2, "eval_every": 3, "progress": False},
        "callbacks": callbacks, "output_dir": str(tmp_path / "run"), "resume": resume,
    })
    polygraft.run_recipe(recipe)
    return tmp_path / "run"


def rows(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_tensorboard_events_hold_metrics_recipe_results_and_plots(tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = train(tmp_path, ["tensorboard"])
    events = EventAccumulator(str(run / "tensorboard"), size_guidance={"scalars": 0, "images": 0}).Reload()
    for key in ("train/loss", "train/lr", "val/loss", "val/accuracy"):
        expected = [(row["step"], row[key]) for row in rows(run) if key in row]
        assert [(e.step, e.value) for e in events.Scalars(key)] == [(s, pytest.approx(v)) for s, v in expected]
    assert {"curves", "confusion"} <= set(events.Tags()["images"])
    hparams = EventAccumulator(str(run / "tensorboard")).Reload()  # add_hparams writes into the same folder
    plugin = hparams.PluginTagToContent("hparams")
    assert plugin, "no hparams summary"
    results = json.loads((run / "results.json").read_text())
    final = {e.step: e.value for e in events.Scalars("results/val/accuracy")}
    assert final == {6: pytest.approx(results["val/accuracy"])}


def test_mlflow_file_store_holds_the_same(tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    run = train(tmp_path, [{"name": "mlflow", "experiment": "digits"}])
    client = MlflowClient(tracking_uri=(run / "mlruns").resolve().as_uri())
    [found] = client.search_runs([client.get_experiment_by_name("digits").experiment_id])
    assert found.info.run_name == "run" and found.info.status == "FINISHED"
    for key in ("train/loss", "val/loss", "val/macro_f1"):
        expected = [(row["step"], row[key]) for row in rows(run) if key in row]
        history = sorted((m.step, m.value) for m in client.get_metric_history(found.info.run_id, key))
        assert history == [(s, pytest.approx(v)) for s, v in expected]
    assert found.data.params["trainer.batch_size"] == "8" and found.data.params["task"] == "classification"
    results = json.loads((run / "results.json").read_text())
    assert found.data.metrics["results/val/accuracy"] == pytest.approx(results["val/accuracy"])
    artifacts = {a.path for a in client.list_artifacts(found.info.run_id)}
    assert {"curves.png", "confusion.png", "results.json"} <= artifacts


def test_trainer_tensorboard_is_gone_with_its_replacement_named() -> None:
    with pytest.raises(ConfigError, match=r"trainer\.tensorboard was removed; write callbacks: \[tensorboard\]"):
        Recipe.from_dict({"task": "classification", "backbone": "toy",
                          "data": {"train": {"dataset": "synthetic-classification"}},
                          "trainer": {"tensorboard": True}})
    # a run directory written before saved the old default: it still reads (resume, compare, evaluate)
    old = Recipe.from_dict({"task": "classification", "backbone": "toy", "trainer": {"tensorboard": False},
                            "data": {"train": {"dataset": "synthetic-classification"}}})
    assert "tensorboard" not in old.to_dict()["trainer"]


def test_a_resumed_run_goes_on_in_the_same_mlflow_run_and_tensorboard_events(tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    callbacks = ["tensorboard", "mlflow"]
    train(tmp_path, callbacks, steps=6)
    run = train(tmp_path, callbacks, steps=9, resume="last")
    client = MlflowClient(tracking_uri=(run / "mlruns").resolve().as_uri())
    [found] = client.search_runs([client.get_experiment_by_name("polygraft").experiment_id])
    expected = [(row["step"], row["train/loss"]) for row in rows(run) if "train/loss" in row]
    assert [row[0] for row in expected] == [2, 4, 6, 8, 9]  # log_every 2 and the last step; the resume added 8, 9
    history = sorted((m.step, m.value) for m in client.get_metric_history(found.info.run_id, "train/loss"))
    assert history == [(s, pytest.approx(v)) for s, v in expected]
    events = EventAccumulator(str(run / "tensorboard"), size_guidance={"scalars": 0}).Reload()
    assert [(e.step, e.value) for e in events.Scalars("train/loss")] == [(s, pytest.approx(v)) for s, v in expected]

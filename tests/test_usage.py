"""What a run cost, split up: the training time's share spent validating and checkpointing, in results.json and
the run log."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import polygraft
from polygraft.training.trainer import Trainer


def test_validation_and_checkpoint_time_are_counted_inside_the_training_time(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = polygraft.load_dataset("synthetic-classification", size=64, in_features=3)
    task = polygraft.create_task("classification", backbone="toy", label_names=data.label_names,
                                 backbone_options={"in_features": 3})
    trainer = Trainer({"max_steps": 8, "batch_size": 8, "eval_every": 2, "progress": False, "num_workers": 0},
                      output_dir=tmp_path / "run")
    trainer.fit(task, train_data=data, val_data=data)
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    validation, checkpoints, total = (results["train/validation_s"], results["train/checkpoint_s"],
                                      results["train/wall_time_s"])
    assert validation > 0 and checkpoints > 0 and validation + checkpoints < total
    log = capsys.readouterr().err
    assert "s of training, of which validation" in log and "checkpoints" in log

    no_val = Trainer({"max_steps": 4, "batch_size": 8, "progress": False, "num_workers": 0})
    no_val.fit(task, train_data=data)
    assert no_val.results["train/validation_s"] == 0.0

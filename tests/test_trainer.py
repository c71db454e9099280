"""The shared trainer on the toy task: learning, run directory, bad input, accumulation, schedules."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import pytest
import torch

import polygraft
from polygraft.builtin.callbacks import BestCheckpoint, EarlyStopping
from polygraft.errors import DataError, TrainingError
from polygraft.interfaces import ListSource
from polygraft.training.config import TrainerConfig


def make_task(in_features: int = 6, labels=("class_0", "class_1", "class_2"), **options):
    torch.manual_seed(0)
    return polygraft.create_task("classification", backbone="toy", label_names=list(labels), dropout=0.0,
                                 backbone_options={"in_features": in_features, "hidden": 32}, **options)


def data(size: int = 96, seed: int = 0):
    return polygraft.load_dataset("synthetic-classification", size=size, in_features=6, seed=seed)


def config(**overrides) -> TrainerConfig:
    return TrainerConfig(**{"batch_size": 8, "lr": 3e-3, "progress": False, "log_every": 2, **overrides})


def test_fit_learns_and_writes_a_readable_run_directory(tmp_path: Path) -> None:
    train, val = data(192, seed=1).split([0.75, 0.25], seed=0)
    task = make_task()
    result = polygraft.Trainer(config(max_epochs=4), output_dir=tmp_path,
                               callbacks=[BestCheckpoint("val/accuracy")]).fit(task, train_data=train, val_data=val)
    assert result.metrics["val/accuracy"] > 0.9
    assert result.stop_reason == "finished"
    for name in ("config.yaml", "metrics.jsonl", "results.json", "data.json", "curves.png", "confusion.png",
                 "checkpoints/last.pt", "checkpoints/best.pt", "model/model.safetensors", "model/polygraft.json"):
        assert (tmp_path / name).is_file(), name
    assert (tmp_path / "curves.png").stat().st_size > 5_000
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["val/accuracy"] == pytest.approx(result.metrics["val/accuracy"])
    assert results["train/steps"] == 4 * math.ceil(len(train) / 8)
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    losses = [row["train/loss"] for row in rows if "train/loss" in row]
    assert losses[-1] < losses[0]
    assert sum("val/accuracy" in row for row in rows) == 4  # once per epoch


def test_load_rebuilds_a_model_that_predicts_the_same(tmp_path: Path) -> None:
    task = make_task()
    polygraft.Trainer(config(max_steps=10), output_dir=tmp_path).fit(task, train_data=data())
    loaded = polygraft.load(tmp_path)
    examples = [data(6, seed=9)[i] for i in range(6)]
    task.eval()
    batch = task.collate([task.prepare_example(e) for e in examples])
    assert loaded.predict(batch) == task.predict(batch)
    assert loaded.label_names == task.label_names


def test_evaluate_matches_the_final_validation(tmp_path: Path) -> None:
    task, val = make_task(), data(40, seed=5)
    result = polygraft.Trainer(config(max_steps=12), output_dir=tmp_path).fit(task, train_data=data(), val_data=val)
    again = polygraft.Trainer(config()).evaluate(polygraft.load(tmp_path), val)
    assert again["val/accuracy"] == pytest.approx(result.metrics["val/accuracy"])
    assert again["val/loss"] == pytest.approx(result.metrics["val/loss"], rel=1e-5)


def test_nonfinite_loss_stops_with_the_step_or_is_skipped_and_counted(tmp_path: Path) -> None:
    good = [data(16)[i] for i in range(16)]
    poisoned = ListSource(good + [{"x": [float("nan")] * 6, "label": "class_0"}] * 16,
                          label_names=["class_0", "class_1", "class_2"])
    with pytest.raises(TrainingError, match=r"loss is nan at step \d+ .*skip_nonfinite"):
        polygraft.Trainer(config(max_steps=8)).fit(make_task(), train_data=poisoned)
    result = polygraft.Trainer(config(max_steps=8, skip_nonfinite=True), output_dir=tmp_path).fit(
        make_task(), train_data=poisoned)
    skipped = json.loads((tmp_path / "results.json").read_text())["train/skipped_nonfinite"]
    assert skipped > 0
    assert result.run_dir == tmp_path
    assert all(torch.isfinite(p).all() for p in polygraft.load(tmp_path).parameters())


def test_empty_data_and_oversized_batches_are_clear_errors() -> None:
    empty = ListSource([], label_names=["a", "b"])
    with pytest.raises(TrainingError, match="empty"):
        polygraft.Trainer(config(max_steps=1)).fit(make_task(labels=["a", "b"]), train_data=empty)
    with pytest.raises(DataError, match="at least 2 labels"):
        make_task(labels=["a"])
    with pytest.raises(TrainingError, match="batch_size=64 is larger"):
        polygraft.Trainer(config(max_steps=1, batch_size=64, drop_last=True)).fit(make_task(), train_data=data(10))


def test_early_stopping_stops_when_the_metric_stalls(tmp_path: Path) -> None:
    result = polygraft.Trainer(config(max_steps=200, lr=0.0, eval_every=2), output_dir=tmp_path,
                               callbacks=[EarlyStopping(monitor="val/loss", patience=2)]).fit(
        make_task(), train_data=data(), val_data=data(24, seed=3))
    assert result.stop_reason.startswith("early stopping")
    assert json.loads((tmp_path / "results.json").read_text())["train/steps"] == 6


def test_gradient_accumulation_matches_a_larger_batch() -> None:
    a, b = make_task(), make_task()
    polygraft.Trainer(config(max_steps=6, batch_size=8, clip_grad_norm=None)).fit(a, train_data=data())
    polygraft.Trainer(config(max_steps=6, batch_size=4, grad_accum=2, clip_grad_norm=None)).fit(b, train_data=data())
    for (name, pa), pb in zip(a.named_parameters(), b.parameters()):
        torch.testing.assert_close(pa, pb, rtol=1e-4, atol=1e-5, msg=name)


def test_bf16_autocast_trains_on_cpu() -> None:
    result = polygraft.Trainer(config(max_steps=10, precision="bf16-mixed")).fit(
        make_task(), train_data=data(), val_data=data(24, seed=2))
    assert math.isfinite(result.metrics["val/loss"])


def test_warmup_then_cosine_schedule() -> None:
    from polygraft.training.optim import build_optimizer, build_scheduler, default_param_groups

    model = torch.nn.Linear(2, 2)
    cfg = config(lr=1.0, warmup_steps=4, schedule="cosine")
    optimizer = build_optimizer(default_param_groups(model, weight_decay=0.1), cfg, torch.device("cpu"))
    scheduler = build_scheduler(optimizer, cfg, total_steps=12)
    lrs = []
    for _ in range(12):
        lrs.append(scheduler.get_last_lr()[0])
        optimizer.step()
        scheduler.step()
    assert lrs[:4] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert lrs[4] == pytest.approx(1.0) and lrs[-1] < 0.05
    assert all(x >= y for x, y in itertools.pairwise(lrs[4:]))
    assert [g["weight_decay"] for g in optimizer.param_groups] == [0.1, 0.0]


def test_bad_trainer_settings_are_config_errors() -> None:
    from polygraft.errors import ConfigError

    with pytest.raises(ConfigError, match="precision"):
        TrainerConfig(precision="fp8")
    with pytest.raises(ConfigError, match=r"max_steps or trainer\.max_epochs"):
        TrainerConfig(max_steps=None, max_epochs=None)

"""``strategy: [{name: distill, teacher: RUN}]`` on the toy backbone: the loss against a hand-written reference, the
teacher's outputs computed once (then read back from the input cache), reordered to the student's labels, the teacher
untouched and not saved, and mismatched teachers refused before training."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch

import polygraft
from polygraft.errors import ConfigError, IncompatibleComponentsError
from polygraft.finetune import distill
from polygraft.recipe import Recipe, run_recipe

DATA = {"train": {"dataset": "synthetic-classification", "size": 96, "in_features": 6, "noise": 1.0},
        "val": {"dataset": "synthetic-classification", "size": 48, "in_features": 6, "noise": 1.0, "split": "val"}}


def recipe(output: Path, **extra: Any) -> Recipe:
    raw = {"task": "classification", "backbone": "toy", "backbone_options": {"in_features": 6, "hidden": 8},
           "data": DATA, "trainer": {"max_steps": 12, "batch_size": 16, "lr": 0.01, "progress": False},
           "output_dir": str(output), **extra}
    return Recipe.from_dict(raw)


@pytest.fixture(scope="module")
def teacher(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("teacher") / "run"
    run_recipe(recipe(run, backbone_options={"in_features": 6, "hidden": 32}, trainer={
        "max_steps": 30, "batch_size": 16, "lr": 0.01, "progress": False}))
    return run


def sha256(file: Path) -> str:
    return hashlib.sha256(file.read_bytes()).hexdigest()


def test_kd_loss_matches_a_hand_written_reference() -> None:
    student = torch.tensor([[1.0, -0.5, 0.2], [0.0, 2.0, -1.0]])
    teacher = torch.tensor([[0.3, 0.1, 2.5], [1.0, 1.0, -3.0]])
    t = 3.0
    expected = 0.0
    for s_row, t_row in zip(student.tolist(), teacher.tolist()):
        p = [math.exp(v / t) for v in t_row]
        q = [math.exp(v / t) for v in s_row]
        p = [v / sum(p) for v in p]
        q = [v / sum(q) for v in q]
        expected += sum(pi * math.log(pi / qi) for pi, qi in zip(p, q))
    expected = expected / 2 * t * t
    assert float(distill.kd_loss(student, teacher, temperature=t)) == pytest.approx(expected, rel=1e-5)


def test_distilled_student_outputs_kept_once_teacher_untouched_and_not_saved(
        teacher: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POLYGRAFT_CACHE", str(tmp_path / "cache"))
    calls: list[int] = []
    original = distill.TeacherOutputs.compute

    def counting(self: distill.TeacherOutputs, batch: Any) -> Any:
        calls.append(len(batch["meta"]["index"]))
        return original(self, batch)

    monkeypatch.setattr(distill.TeacherOutputs, "compute", counting)
    weights = teacher / "model" / "model.safetensors"
    before = sha256(weights)
    labels = ["class_2", "class_0", "class_1"]  # another order than the teacher's: outputs must be reordered
    seen: list[torch.Tensor] = []

    class Spy(polygraft.interfaces.Callback):
        def on_train_batch_end(self, trainer: Any, batch: Any, output: Any) -> None:
            seen.append(batch["example_outputs"]["teacher"]["logits"][:1].clone())
            seen.append(batch["meta"]["index"][:1].clone())

    strategy = [{"name": "distill", "teacher": str(teacher), "temperature": 2.0, "alpha": 0.7, "features": 1.0}]
    result = run_recipe(recipe(tmp_path / "student", strategy=strategy, labels=labels,
                               trainer={"max_steps": 18, "batch_size": 16, "lr": 0.01, "progress": False}),
                        callbacks=[Spy()])
    assert sum(calls) == 96 and len(calls) == 6  # every training example once, over 3 epochs of training
    assert 0.0 <= result.metrics["val/accuracy"] <= 1.0

    # the kept row of an example is the teacher's own logits for it, in the student's label order
    model = polygraft.load(teacher)
    train = polygraft.load_dataset("synthetic-classification", size=96, in_features=6, noise=1.0)
    first, index = seen[0][0], int(seen[1][0])
    inputs = model.collate([model.prepare_example(train[index])])["inputs"]
    with torch.no_grad():
        own = model.export_outputs(inputs)["logits"][0]
    order = [model.label_names.index(name) for name in labels]
    torch.testing.assert_close(first, own[order], rtol=1e-5, atol=1e-5)

    # the teacher never changed; the student's saved model is the task alone (no teacher, no feature map)
    assert sha256(weights) == before
    saved = polygraft.load(tmp_path / "student")
    fresh = polygraft.create_task("classification", backbone="toy", label_names=labels,
                                  backbone_options={"in_features": 6, "hidden": 8})
    assert set(saved.state_dict()) == set(fresh.state_dict())
    assert saved.label_names == labels
    config = json.loads((tmp_path / "student" / "model" / "polygraft.json").read_text())
    assert "teacher" not in json.dumps(config)

    # a second run with the same teacher and data reads the outputs back from the input cache
    calls.clear()
    run_recipe(recipe(tmp_path / "again", strategy=strategy, labels=labels))
    assert calls == []
    assert any((tmp_path / "cache" / "prepared").glob("*-teacher-*"))


def test_alpha_zero_trains_exactly_like_the_task_alone(teacher: Path, tmp_path: Path) -> None:
    """The hook adds only what it says: with alpha 0 and no feature matching the run is the plain run."""
    plain = run_recipe(recipe(tmp_path / "plain"))
    distilled = run_recipe(recipe(tmp_path / "alpha0", strategy=[{"name": "distill", "teacher": str(teacher),
                                                                  "alpha": 0.0}], trainer={
        "max_steps": 12, "batch_size": 16, "lr": 0.01, "progress": False, "cache": "memory"}))
    assert distilled.metrics == pytest.approx(plain.metrics, abs=1e-6)


def test_a_teacher_with_other_labels_or_task_is_refused_before_training(teacher: Path, tmp_path: Path) -> None:
    four = {split: {**ref, "num_classes": 4} for split, ref in DATA.items()}
    with pytest.raises(IncompatibleComponentsError) as error:
        run_recipe(recipe(tmp_path / "s4", data=four, strategy=[{"name": "distill", "teacher": str(teacher)}]))
    text = str(error.value)
    assert "['class_0', 'class_1', 'class_2']" in text and "'class_3'" in text and "only the student's" in text
    assert not (tmp_path / "s4" / "metrics.jsonl").exists()

    other = tmp_path / "other_task"
    (other / "model").mkdir(parents=True)
    for file in (teacher / "model").iterdir():
        (other / "model" / file.name).write_bytes(file.read_bytes())
    config = json.loads((other / "model" / "polygraft.json").read_text())
    (other / "model" / "polygraft.json").write_text(json.dumps({**config, "task": "metric-learning"}))
    with pytest.raises(IncompatibleComponentsError, match=r"trained for task 'metric-learning'.*Teacher labels"):
        run_recipe(recipe(tmp_path / "s5", strategy=[{"name": "distill", "teacher": str(other)}]))
    with pytest.raises(ConfigError, match="does not exist"):
        run_recipe(recipe(tmp_path / "s6", strategy=[{"name": "distill", "teacher": str(tmp_path / "nope")}]))
    with pytest.raises(ConfigError, match="alpha"):
        run_recipe(recipe(tmp_path / "s7", strategy=[{"name": "distill", "teacher": str(teacher), "alpha": 2}]))

"""Regression, multi-label classification, class weights and the focal loss: metrics against scikit-learn on the
same predictions (in awkward batch orders), target standardisation fitted and saved, and the bad-input rules."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn import metrics as sk
from sklearn.utils.class_weight import compute_class_weight

import polygraft
from polygraft.builtin.callbacks import infer_mode
from polygraft.errors import ConfigError, DataError
from polygraft.interfaces import ListSource, StepOutput
from polygraft.tasks.losses import focal_loss


def vectors(count: int, seed: int = 0) -> list[list[float]]:
    rng = random.Random(seed)
    return [[rng.gauss(0, 1) for _ in range(3)] for _ in range(count)]


def feed(task, outputs: torch.Tensor, targets: torch.Tensor, sizes: list[int]) -> dict[str, float]:
    """Metrics of ``outputs`` against ``targets`` fed in batches of ``sizes``."""
    task.reset_metrics()
    start = 0
    for size in sizes:
        batch = {"targets": targets[start:start + size]}
        task.update_metrics(batch, StepOutput(loss=torch.zeros(()), outputs=outputs[start:start + size]))
        start += size
    return task.compute_metrics()


@pytest.mark.parametrize("targets", [1, 3])
def test_regression_metrics_match_scikit_learn(targets: int) -> None:
    names = [f"t{i}" for i in range(targets)]
    task = polygraft.create_task("regression", backbone="toy", label_names=names, backbone_options={"in_features": 3})
    with torch.no_grad():
        task.target_mean.copy_(torch.arange(targets) * 10.0)
        task.target_std.copy_(torch.arange(targets) + 2.0)
    generator = torch.Generator().manual_seed(0)
    outputs = torch.randn(37, targets, generator=generator)
    truth = torch.randn(37, targets, generator=generator) * 5 + 3
    truth[:, 0] = truth[0, 0] if targets == 3 else truth[:, 0]  # a constant target: R² is 0 unless perfect
    got = feed(task, outputs, truth, [1, 16, 20])
    predicted = (outputs * task.target_std + task.target_mean).double().numpy()
    truth = truth.double().numpy()  # float64, so scikit-learn sees the constant column as exactly constant
    assert got["rmse"] == pytest.approx(sk.root_mean_squared_error(truth, predicted), rel=1e-5)
    assert got["mae"] == pytest.approx(sk.mean_absolute_error(truth, predicted), rel=1e-5)
    assert got["r2"] == pytest.approx(sk.r2_score(truth, predicted), rel=1e-4, abs=1e-5)
    if targets == 3:
        per_target = sk.r2_score(truth, predicted, multioutput="raw_values")
        assert [got[f"r2_t{i}"] for i in range(3)] == pytest.approx(per_target, rel=1e-4, abs=1e-5)


def test_regression_standardises_on_the_training_split_and_the_model_keeps_it(tmp_path: Path) -> None:
    xs = vectors(64)
    data = ListSource([{"x": x, "label": [1000 + 50 * x[0], -3 * x[1]]} for x in xs])
    task = polygraft.create_task("regression", backbone="toy", label_names=["price", "score"],
                                 backbone_options={"in_features": 3}, loss="huber")
    config = polygraft.TrainerConfig(max_steps=60, batch_size=16, lr=1e-2, progress=False)
    result = polygraft.Trainer(config, output_dir=tmp_path).fit(task, train_data=data, val_data=data)
    values = np.array([row["label"] for row in data.examples])
    assert task.target_mean.tolist() == pytest.approx(values.mean(0).tolist(), rel=1e-6)
    assert task.target_std.tolist() == pytest.approx(values.std(0).tolist(), rel=1e-6)
    assert result.metrics["val/r2"] > 0.5
    loaded = polygraft.load(tmp_path)
    assert loaded.target_mean.tolist() == task.target_mean.tolist()
    example = {"x": xs[0]}
    assert loaded.predict_examples([example]) == task.eval().predict_examples([example])
    assert (tmp_path / "predictions.png").is_file() and infer_mode("val/rmse") == "min"


def test_a_non_numeric_target_names_file_and_line(tmp_path: Path) -> None:
    table = tmp_path / "prices.csv"
    table.write_text("words,label\ncheap,3.5\nexpensive,a lot\n")
    data = polygraft.load_dataset("multimodal-manifest", path=str(table), columns={"words": "text"})
    task = polygraft.create_task("regression", backbone="toy", label_names=["price"])
    pipeline = task.data_pipeline(training=False)
    with pytest.raises(DataError, match=r"prices\.csv:3: target 'a lot' is not a number"):
        pipeline.prepare({"x": [0.0] * 8, **data[1]})
    with pytest.raises(DataError, match=r"prices\.csv:3: target 'a lot' is not a number"):
        task.fit_data(data)


def test_multilabel_metrics_match_scikit_learn() -> None:
    labels = ["a", "b", "c", "d"]
    task = polygraft.create_task("multilabel-classification", backbone="toy", label_names=labels, threshold=0.4)
    generator = torch.Generator().manual_seed(1)
    logits = torch.randn(41, 4, generator=generator)
    truth = (torch.rand(41, 4, generator=generator) > 0.6).float()
    truth[:, 3] = 0  # a label that never occurs: AP of 0 and F1 of 0, as scikit-learn counts them
    got = feed(task, logits, truth, [5, 1, 35])
    scores = torch.sigmoid(logits).numpy()
    predicted = (scores >= 0.4).astype(int)
    assert got["micro_f1"] == pytest.approx(sk.f1_score(truth, predicted, average="micro", zero_division=0), abs=1e-6)
    assert got["macro_f1"] == pytest.approx(sk.f1_score(truth, predicted, average="macro", zero_division=0), abs=1e-6)
    assert got["exact_match"] == pytest.approx(sk.accuracy_score(truth, predicted), abs=1e-6)
    with pytest.warns(UserWarning):
        expected_map = sk.average_precision_score(truth, scores, average="macro")
    assert got["map"] == pytest.approx(expected_map, abs=1e-6)


def test_multilabel_reads_lists_and_separated_strings_and_refuses_unknown_labels() -> None:
    data = ListSource([{"x": [0.0, 1.0], "label": "b|a"}, {"x": [1.0, 0.0], "label": ["c"]},
                       {"x": [1.0, 1.0], "label": ""}])
    task_type = polygraft.build_catalog().get("task", "multilabel-classification").load_factory()
    assert task_type.labels_from_data(data) == ["a", "b", "c"]
    task = polygraft.create_task("multilabel-classification", backbone="toy", label_names=["a", "b", "c"],
                                 backbone_options={"in_features": 2})
    batch = task.collate([task.prepare_example(example) for example in data])
    assert batch["targets"].tolist() == [[1, 1, 0], [0, 0, 1], [0, 0, 0]]
    assert task.unknown_labels(ListSource([{"x": [0.0, 0.0], "label": "a|zz"}])) == ["zz"]
    with pytest.raises(DataError, match=r"row:7: label 'zz' was never seen"):
        task.prepare_example({"x": [0.0, 0.0], "label": "zz", "_origin": "row:7"})
    assert {"labels", "probabilities"} <= set(task.predict(batch)[0])


def test_class_weights_auto_are_scikit_learns_balanced_weights() -> None:
    labels = ["a", "b", "c"]
    drawn = ["a"] * 30 + ["b"] * 6 + ["c"] * 4
    data = ListSource([{"x": [0.0] * 8, "label": label} for label in drawn])
    task = polygraft.create_task("classification", backbone="toy", label_names=labels, class_weights="auto")
    task.fit_data(data)
    expected = compute_class_weight("balanced", classes=np.array(labels), y=np.array(drawn))
    assert task.class_weight.tolist() == pytest.approx(expected.tolist(), rel=1e-6)
    hand = polygraft.create_task("classification", backbone="toy", label_names=labels, class_weights={"c": 3.0})
    assert hand.class_weight.tolist() == [1.0, 1.0, 3.0]
    with pytest.raises(ConfigError, match="'cc' is not a label; did you mean 'c'"):
        polygraft.create_task("classification", backbone="toy", label_names=labels, class_weights={"cc": 2})
    logits, target = torch.randn(6, 3), torch.tensor([0, 1, 2, 2, 1, 0])
    weighted = task.loss(logits, target)
    assert weighted == pytest.approx(float(torch.nn.functional.cross_entropy(logits, target, weight=task.class_weight)))


def test_focal_loss_matches_its_definition_and_is_cross_entropy_at_gamma_zero() -> None:
    generator = torch.Generator().manual_seed(2)
    logits, target = torch.randn(9, 4, generator=generator), torch.randint(0, 4, (9,), generator=generator)
    weight = torch.tensor([0.5, 1.0, 2.0, 1.5])
    p = torch.softmax(logits.double(), dim=-1)[torch.arange(9), target]
    alpha = weight.double()[target]
    reference = float((-(alpha * (1 - p) ** 2 * torch.log(p))).sum() / alpha.sum())
    assert float(focal_loss(logits, target, gamma=2.0, weight=weight)) == pytest.approx(reference, rel=1e-5)
    ce = torch.nn.functional.cross_entropy(logits, target, weight=weight)
    assert float(focal_loss(logits, target, gamma=0.0, weight=weight)) == pytest.approx(float(ce), rel=1e-6)
    task = polygraft.create_task("classification", backbone="toy", label_names=["a", "b"], loss="focal",
                                 focal_gamma=1.0)
    assert task.loss(logits[:, :2], target % 2) > 0
    with pytest.raises(ConfigError, match="did you mean 'focal'"):
        polygraft.create_task("classification", backbone="toy", label_names=["a", "b"], loss="focall")
    with pytest.raises(ConfigError, match="does not combine with label_smoothing"):
        polygraft.create_task("classification", backbone="toy", label_names=["a", "b"], loss="focal",
                              label_smoothing=0.1)

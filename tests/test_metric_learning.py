"""Metric learning: verification metrics against scikit-learn and brute-force references (ties, singletons), the
open-set rule, the threshold chosen on validation and kept with the model, and `polygraft predict RUN a b`."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.interpolate import interp1d
from scipy.optimize import brentq
from sklearn.metrics import roc_auc_score, roc_curve

import polygraft
from polygraft.cli import main
from polygraft.errors import DataError
from polygraft.interfaces import ListSource
from polygraft.tasks.verification_metrics import verification_metrics


def reference_metrics(embeddings: np.ndarray, identities: np.ndarray, far: float) -> dict[str, float]:
    """Brute force over pairs and queries, with scikit-learn's ROC and the brentq EER speaker toolkits use."""
    unit = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)
    scores, same = [], []
    for i in range(len(unit)):
        for j in range(i + 1, len(unit)):
            scores.append(float(unit[i] @ unit[j]))
            same.append(int(identities[i] == identities[j]))
    fpr, tpr, _ = roc_curve(same, scores)
    full_fpr, full_tpr, _ = roc_curve(same, scores, drop_intermediate=False)
    eer = brentq(lambda x: 1.0 - x - interp1d(fpr, tpr)(x), 0.0, 1.0, xtol=1e-12)
    correct, queries = 0, 0
    for i in range(len(unit)):
        if sum(identities == identities[i]) < 2:
            continue
        best = max((j for j in range(len(unit)) if j != i), key=lambda j: float(unit[i] @ unit[j]))
        queries += 1
        correct += int(identities[best] == identities[i])
    return {"roc_auc": roc_auc_score(same, scores), "eer": eer,
            "tar_at_far": float(full_tpr[full_fpr <= far].max()), "rank1": correct / queries,
            "rank1_queries": queries}


@pytest.mark.parametrize("case", ["separable", "noisy", "ties", "singletons"])
def test_verification_metrics_match_independent_references(case: str) -> None:
    rng = np.random.default_rng({"separable": 0, "noisy": 1, "ties": 2, "singletons": 3}[case])
    identities = np.repeat(np.arange(8), 6)
    if case == "singletons":  # three identities with a single example: pairs yes, rank-1 queries no
        identities = np.concatenate([identities, [20, 21, 22]])
    centres = rng.normal(size=(int(identities.max()) + 1, 6))
    spread = {"separable": 0.05, "noisy": 1.2, "ties": 0.8, "singletons": 0.9}[case]
    embeddings = centres[identities] + spread * rng.normal(size=(len(identities), 6))
    if case == "ties":  # few distinct directions: many pairs share a score exactly
        embeddings = np.sign(embeddings)
    ours = verification_metrics(torch.tensor(embeddings), torch.tensor(identities), far=0.05)
    reference = reference_metrics(embeddings, identities, far=0.05)
    for key in ("roc_auc", "eer", "tar_at_far", "rank1"):
        assert ours[key] == pytest.approx(reference[key], abs=1e-9), key
    assert ours["rank1_queries"] == reference["rank1_queries"]
    assert ours["single_example_identities"] == (3 if case == "singletons" else 0)
    if case == "separable":
        assert ours["eer"] == 0.0 and ours["roc_auc"] == 1.0


def test_eer_threshold_sits_at_the_crossing_of_false_accepts_and_false_rejects() -> None:
    rng = np.random.default_rng(4)
    identities = np.repeat(np.arange(10), 5)
    embeddings = rng.normal(size=(10, 4))[identities] + rng.normal(size=(50, 4))
    metrics = verification_metrics(torch.tensor(embeddings), torch.tensor(identities), threshold="eer")
    # the threshold lies between the two ROC points the crossing lies between: one side of the EER each
    assert metrics["far_at_threshold"] <= metrics["eer"] + 1e-9 <= metrics["frr_at_threshold"] + 2e-2
    assert abs(metrics["far_at_threshold"] - metrics["frr_at_threshold"]) < 0.05


def test_verification_needs_both_kinds_of_pair() -> None:
    with pytest.raises(DataError, match="different identities"):
        verification_metrics(torch.randn(4, 3), torch.zeros(4, dtype=torch.long))
    with pytest.raises(DataError, match="two examples of one identity"):
        verification_metrics(torch.randn(4, 3), torch.arange(4))


def identity_data(names: list[str], per_identity: int, *, seed: int, centres_seed: int = 0) -> ListSource:
    """Gaussian clusters in 8 dimensions, one per identity (the same centres for a name whatever the split)."""
    rng = random.Random(seed)
    examples = []
    for name in names:
        centre = random.Random(f"{centres_seed}/{name}")
        mean = [centre.gauss(0.0, 1.0) for _ in range(8)]
        examples += [{"x": [m + rng.gauss(0.0, 0.3) for m in mean], "label": name} for _ in range(per_identity)]
    return ListSource(examples, label_names=sorted(names), name="identities")


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, float]]:
    run = tmp_path_factory.mktemp("metric") / "run"
    train = identity_data([f"train{i}" for i in range(6)], 12, seed=0)
    val, test = identity_data([f"val{i}" for i in range(4)], 6, seed=1), identity_data([f"test{i}" for i in range(4)],
                                                                                      6, seed=2)
    recipe = polygraft.Recipe.from_dict({
        "task": "metric-learning", "backbone": "toy", "backbone_options": {"in_features": 8, "hidden": 32},
        "task_options": {"embedding_dim": 16, "scale": 16.0}, "data": {"train": {"dataset": "x"}},
        "trainer": {"max_steps": 20, "batch_size": 16, "lr": 3e-3, "progress": False}, "output_dir": str(run)})
    torch.manual_seed(0)
    task = polygraft.create_task("metric-learning", backbone="toy", label_names=train.label_names,
                                 backbone_options={"in_features": 8, "hidden": 32}, embedding_dim=16, scale=16.0)
    result = polygraft.Trainer(recipe.trainer, output_dir=run).fit(task, train_data=train, val_data=val,
                                                                    test_data=test)
    return run, result.metrics


def test_task_metrics_equal_the_reference_on_its_own_embeddings(trained_run: tuple[Path, dict[str, float]]) -> None:
    run, metrics = trained_run
    task = polygraft.load(run)
    val = identity_data([f"val{i}" for i in range(4)], 6, seed=1)
    batch = task.collate([task.prepare_example(val[i]) for i in range(len(val))])
    with torch.no_grad():
        embeddings = task.embed(batch["inputs"]).double().numpy()
    identities = np.array([int(val[i]["label"][3:]) for i in range(len(val))])
    reference = reference_metrics(embeddings, identities, far=0.01)
    for key in ("roc_auc", "eer", "tar_at_far", "rank1"):
        assert metrics[f"val/{key}"] == pytest.approx(reference[key], abs=1e-4), key
    assert metrics["val/roc_auc"] > 0.9  # 20 steps separate unseen clusters: the embedding generalises


def test_threshold_chosen_on_val_is_saved_and_scores_the_test_split(trained_run: tuple[Path, dict[str, float]]) -> None:
    run, metrics = trained_run
    task = polygraft.load(run)
    assert float(task.threshold) == pytest.approx(metrics["val/eer_threshold"])
    assert json.loads((run / "model" / "polygraft.json").read_text())["verification"]["threshold"] == \
        pytest.approx(metrics["val/eer_threshold"])
    assert {"test/far_at_threshold", "test/frr_at_threshold", "test/eer"} <= set(metrics)


def test_predict_two_inputs_answers_same_identity(trained_run: tuple[Path, dict[str, float]],
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    run, metrics = trained_run
    val = identity_data(["val0", "val1"], 2, seed=5)
    a, b, c = (json.dumps(val[i]["x"]) for i in (0, 1, 2))
    assert main(["predict", str(run), a, b, c, "--json"]) == 0
    same, different = json.loads(capsys.readouterr().out)
    assert same["reference"] == different["reference"] and same["threshold"] == pytest.approx(
        metrics["val/eer_threshold"], abs=1e-6)
    assert same["same_identity"] is True and different["same_identity"] is False
    assert same["score"] > different["score"]
    assert main(["predict", str(run), a, b]) == 0
    assert "same identity (score" in capsys.readouterr().out


def test_open_set_refuses_evaluation_identities_seen_in_training() -> None:
    task = polygraft.create_task("metric-learning", backbone="toy", label_names=["a", "b", "c"],
                                 backbone_options={"in_features": 8})
    with pytest.raises(DataError, match="shares 1 identities with training"):
        task.unknown_labels(identity_data(["c", "d"], 2, seed=0))
    closed = polygraft.create_task("metric-learning", backbone="toy", label_names=["a", "b", "c"],
                                   backbone_options={"in_features": 8}, open_set=False)
    assert closed.unknown_labels(identity_data(["c", "d"], 2, seed=0)) == []
    with pytest.raises(DataError, match="at least 2 training identities"):
        polygraft.create_task("metric-learning", backbone="toy", label_names=["solo"],
                              backbone_options={"in_features": 8})


@pytest.mark.parametrize("loss", ["cosface", "contrastive"])
def test_other_losses_train(loss: str) -> None:
    task = polygraft.create_task("metric-learning", backbone="toy", label_names=["a", "b"],
                                 backbone_options={"in_features": 8}, loss=loss, embedding_dim=8).train()
    data = identity_data(["a", "b"], 4, seed=0)
    batch = task.collate([task.prepare_example(data[i]) for i in range(len(data))])
    output = task(batch)
    output.loss.backward()
    assert torch.isfinite(output.loss) and float(output.loss.detach()) > 0
    assert task.head.projection.weight.grad is not None

"""Modality contributions of a fused model (``modality-ablation``, ``modality-shapley``) on toy branches whose
answer is known: a head that reads only branch ``a`` (set by hand: ``b`` contributes exactly 0), and a model trained
on labels that only ``a`` decides; Shapley values add up to f(input) - f(no branch); a missing branch takes the
path of a missing field; other backbones are refused with the methods that apply; the CLI with ``--field``."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch

import polygraft
from polygraft.cli import main
from polygraft.errors import IncompatibleComponentsError
from polygraft.explain import explain, explainer_names, render
from polygraft.explain.modality import shapley_values, with_branches
from polygraft.explain.subject import Subject
from polygraft.model_io import save_model

BRANCHES = {"a": {"backbone": "toy", "backbone_options": {"in_features": 2, "hidden": 8}},
            "b": {"backbone": "toy", "backbone_options": {"in_features": 3, "hidden": 6}, "fields": ["bee"]}}
FULL = {"a": [1.5, -0.5], "bee": [0.3, -1.0, 2.0]}


def head_reads_only_a() -> polygraft.interfaces.Task:
    """``concat`` fusion (a's 8 features, then b's 6) and a head whose weights on b's features are 0."""
    torch.manual_seed(0)
    task = polygraft.create_task("classification", backbone="fusion", label_names=["no", "yes"],
                                 backbone_options={"branches": BRANCHES, "fusion": "concat"})
    with torch.no_grad():
        task.head.linear.weight[:, 8:] = 0.0
        task.head.linear.weight[:, :8] *= 20  # a clear effect of a
    return task.eval()


def rows(count: int, seed: int) -> list[dict]:
    """The label is the sign of a[0]; bee is noise."""
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        y = rng.random() < 0.5
        out.append({"a": [(1.0 if y else -1.0) + rng.gauss(0, 0.3), rng.gauss(0, 1)],
                    "bee": [rng.gauss(0, 1) for _ in range(3)], "label": "yes" if y else "no"})
    return out


@pytest.fixture(scope="module")
def trained() -> polygraft.interfaces.Task:
    """An ``mlp`` fusion trained (modality dropout 0.3, so the missing embeddings are learned) on :func:`rows`."""
    torch.manual_seed(0)
    task = polygraft.create_task("classification", backbone="fusion", label_names=["no", "yes"], backbone_options={
        "branches": BRANCHES, "hidden": 16, "modality_dropout": 0.3})
    pipeline = task.data_pipeline(training=False)
    prepared = [pipeline.prepare(example) for example in rows(256, seed=0)]
    optimizer = torch.optim.AdamW(task.parameters(), lr=1e-2)
    order = random.Random(0)
    task.train()
    for _ in range(120):
        loss = task(pipeline.collate(order.sample(prepared, 32))).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return task.eval()


def log_probability(task: polygraft.interfaces.Task, inputs: dict, index: int) -> float:
    with torch.no_grad():
        return float(torch.log_softmax(task.head(task.backbone(inputs)), -1)[0, index])


def test_the_methods_are_registered_and_apply_only_to_fusion() -> None:
    assert {"modality-ablation", "modality-shapley"} <= set(explainer_names())
    fused = explain(head_reads_only_a(), FULL, method="ablation")  # alias
    assert fused.method == "modality-ablation" and fused.kind == "modality"
    assert {"modality-ablation", "modality-shapley", "occlusion"} <= set(fused.methods)
    torch.manual_seed(0)
    toy = polygraft.create_task("classification", backbone="toy", label_names=["a", "b"],
                                backbone_options={"in_features": 3}).eval()
    with pytest.raises(IncompatibleComponentsError, match=r"not a fusion backbone.*Methods that do: occlusion$"):
        explain(toy, {"x": [0.5, -1.0, 2.0]}, method="modality-shapley")
    assert explain(toy, {"x": [0.5, -1.0, 2.0]}).methods == ["occlusion"]


def test_a_head_that_ignores_b_gives_b_nothing_and_a_its_exact_share() -> None:
    task = head_reads_only_a()
    ablation = explain(task, FULL, method="modality-ablation")
    [row] = [a.summary() for a in ablation.attributions]
    scores = dict(row["scores"])
    assert list(scores) == ["a", "b"] and scores["b"] == pytest.approx(0.0, abs=1e-6)
    # a's share by hand: the input, and the input with a's features replaced by a's learned missing embedding
    subject = Subject(task, *_batch(task, FULL))
    index = row["class"]
    full = log_probability(task, subject.inputs, index)
    features = task.backbone(subject.inputs).pool().detach()
    features[:, :8] = task.backbone.fusion.missing["a"].detach()
    with torch.no_grad():
        by_hand = full - float(torch.log_softmax(task.head.linear(features), -1)[0, index])
    assert abs(scores["a"]) > 0.5 and scores["a"] == pytest.approx(by_hand, abs=1e-5)
    assert row["f_input"] == pytest.approx(full, abs=1e-6) and row["forward_passes"] == 3
    shapley = dict(explain(task, FULL, method="modality-shapley").attributions[0].summary()["scores"])
    assert shapley["a"] == pytest.approx(scores["a"], abs=1e-5) and shapley["b"] == pytest.approx(0.0, abs=1e-6)


def _batch(task: polygraft.interfaces.Task, example: dict) -> tuple[dict, dict]:
    pipeline = task.data_pipeline(training=False)
    return pipeline.collate([pipeline.prepare(example)]), example


def test_shapley_values_add_up_to_the_input_against_no_branch(trained: polygraft.interfaces.Task) -> None:
    for example in rows(8, seed=1):
        example = {k: v for k, v in example.items() if k != "label"}
        attribution = explain(trained, example, method="modality-shapley").attributions[0]
        subject = Subject(trained, *_batch(trained, example))
        index = attribution.info["class"]
        nothing = {"present": {name: torch.zeros(1, dtype=torch.bool) for name in ("a", "b")}, "branches": {}}
        gap = log_probability(trained, subject.inputs, index) - log_probability(trained, nothing, index)
        assert float(attribution.scores.sum()) == pytest.approx(gap, abs=1e-5)
        assert attribution.completeness is not None and attribution.completeness["within_tolerance"]
        assert attribution.completeness["passes"] == 4 and attribution.completeness["gap"] == pytest.approx(gap)


def test_the_shapley_formula_on_a_game_with_a_known_answer() -> None:
    # v = 2·[a] + 1·[b] + 3·[a and c]: a gets 2 + 1.5, b 1, c 1.5; one call per subset
    calls: list[frozenset[str]] = []

    def value(kept: list[str]) -> float:
        calls.append(frozenset(kept))
        return 2.0 * ("a" in kept) + 1.0 * ("b" in kept) + 3.0 * ("a" in kept and "c" in kept)

    assert shapley_values(["a", "b", "c"], value) == pytest.approx({"a": 3.5, "b": 1.0, "c": 1.5})
    assert len(calls) == len(set(calls)) == 8


def test_trained_on_labels_only_a_decides_a_dominates(trained: polygraft.interfaces.Task) -> None:
    test = rows(30, seed=2)
    accuracy = np.mean([p["label"] == r["label"] for p, r in zip(
        trained.predict_examples([{k: v for k, v in r.items() if k != "label"} for r in test]), test)])
    assert accuracy > 0.9
    contributions = {"modality-ablation": [], "modality-shapley": []}
    for example in test:
        example = {k: v for k, v in example.items() if k != "label"}
        for method, found in contributions.items():
            found.append(explain(trained, example, method=method).attributions[0].scores)
    # measured (seed 0, 30 rows): mean |a| 0.69 for both; mean |b| 0.0001 (ablation), 0.043 (Shapley: with a
    # missing, b's noise moves the score a little)
    for method, found in contributions.items():
        a, b = np.abs(np.array(found)).mean(0)
        assert a > 5 * b and a > 0.3, (method, a, b)
    assert np.abs(np.array(contributions["modality-ablation"]))[:, 1].mean() < 0.01


def test_a_missing_branch_contributes_nothing_and_takes_the_path_of_a_missing_field(
        trained: polygraft.interfaces.Task) -> None:
    full = explain(trained, FULL, method="modality-ablation").attributions[0]
    only_a = explain(trained, {"a": FULL["a"]}, method="modality-ablation", target=full.label).attributions[0]
    # taking b away = predicting with the bee field left out (polygraft predict's path)
    assert full.info["f_without"]["b"] == pytest.approx(only_a.info["f_input"], abs=1e-6)
    [predicted] = trained.predict_examples([{"a": FULL["a"]}])
    probability = predicted["score"] if predicted["label"] == full.label else 1 - predicted["score"]
    assert only_a.info["f_input"] == pytest.approx(float(np.log(probability)), abs=1e-5)
    assert only_a.scores[1] == 0.0 and only_a.info["absent_branches"] == ["b"] and "b is missing" in only_a.notes[0]
    subject = Subject(trained, *_batch(trained, FULL))
    cut = with_branches(subject, ["a"])
    assert set(cut["branches"]) == {"a"} and not bool(cut["present"]["b"][0]) and bool(cut["present"]["a"][0])


def test_render_draws_one_bar_per_branch(tmp_path: Path) -> None:
    result = explain(head_reads_only_a(), FULL, method="modality-shapley")
    files = render(result, tmp_path)
    assert [Path(f).suffix for f in files] == [".png", ".json"] and Path(files[0]).stat().st_size > 1000
    saved = json.loads(Path(files[1]).read_text())
    assert saved["kind"] == "modality" and [name for name, _ in saved["explanations"][0]["scores"]] == ["a", "b"]


def test_cli_explain_with_fields_on_a_saved_fusion_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    save_model(head_reads_only_a(), tmp_path / "run" / "model")
    run = str(tmp_path / "run")
    fields = ["--field", "a=[1.5, -0.5]", "--field", "bee=[0.3, -1.0, 2.0]"]
    assert main(["explain", run, *fields, "--method", "modality-ablation", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["method"] == "modality-ablation" and report["kind"] == "modality"
    scores = dict(report["explanations"][0]["scores"])
    assert scores["b"] == pytest.approx(0.0, abs=1e-6) and abs(scores["a"]) > 0.5
    assert [Path(f).suffix for f in report["files"]] == [".png", ".json"] and all(Path(f).is_file()
                                                                                for f in report["files"])
    assert main(["explain", run, *fields, "--method", "shapley"]) == 0
    printed = capsys.readouterr().out
    assert "modality-shapley" in printed and "4 forward passes" in printed and "a " in printed
    assert main(["explain", run, *fields, "--method", "gradcam"]) == 2
    assert "modality-ablation, modality-shapley" in capsys.readouterr().err
    assert main(["explain", run]) == 2
    assert "--field NAME=VALUE" in capsys.readouterr().err


def test_exact_shapley_values_are_refused_past_eight_branches_and_work_with_a_transformer_fusion() -> None:
    torch.manual_seed(0)
    many = {f"m{i}": {"backbone": "toy", "backbone_options": {"in_features": 1, "hidden": 4}} for i in range(9)}
    task = polygraft.create_task("classification", backbone="fusion", label_names=["no", "yes"],
                                 backbone_options={"branches": many, "hidden": 8}).eval()
    example = {f"m{i}": [float(i)] for i in range(9)}
    with pytest.raises(IncompatibleComponentsError, match=r"2\*\*n forward passes.*Methods that do: .*modality-abl"):
        explain(task, example, method="modality-shapley")
    assert explain(task, example, method="modality-ablation").attributions[0].scores.shape == (9,)
    assert "modality-shapley" in explain(task, {"m0": [1.0], "m1": [2.0]}, method="modality-shapley").methods
    torch.manual_seed(0)
    task = polygraft.create_task("classification", backbone="fusion", label_names=["no", "yes"], backbone_options={
        "branches": BRANCHES, "fusion": "transformer", "hidden": 8, "heads": 2, "depth": 1}).eval()
    attribution = explain(task, FULL, method="modality-shapley").attributions[0]
    report = attribution.completeness
    assert report is not None and float(attribution.scores.sum()) == pytest.approx(report["gap"], abs=1e-6)
    assert report["gap"] == pytest.approx(report["f_input"] - report["f_baseline"]) and report["gap"] != 0

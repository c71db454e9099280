"""``polygraft explain`` without any first-party plugin: the hook, the fallback, the registry, the checks, the CLI.

The toy backbone declares no attribution hooks (it gets occlusion); the example third-party plugin's MLP
(examples/plugins/polygraft-tabular) declares three lines of them and gets Integrated Gradients with no change to
core. A known answer for vectors: when only one feature decides the class, it gets the largest attribution.
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import polygraft
from polygraft.cli import main
from polygraft.errors import IncompatibleComponentsError, PluginError, UnknownComponentError
from polygraft.explain import explain, explainer_names, register_explainer, render
from polygraft.explain.checks import deletion, pointing_hit, rank_correlation
from polygraft.explain.registry import Explainer, RawAttribution, applicable
from polygraft.interfaces import AttributionHooks
from polygraft.model_io import save_model
from polygraft.testing import heavy_modules_imported_by

ROOT = Path(__file__).resolve().parents[1]


def toy_task() -> polygraft.interfaces.Task:
    torch.manual_seed(0)
    return polygraft.create_task("classification", backbone="toy", label_names=["a", "b"],
                                 backbone_options={"in_features": 3}).eval()


@pytest.fixture(scope="module")
def tabular_task():  # type: ignore[no-untyped-def]
    """The tabular plugin's MLP trained on rows whose class is the sign of feature 2 (the others are noise)."""
    sys.path.insert(0, str(ROOT / "examples" / "plugins" / "polygraft-tabular"))
    try:
        from polygraft_tabular.backbone import create_mlp_backbone
    finally:
        sys.path.pop(0)
    torch.manual_seed(0)
    task = polygraft.create_task("classification", backbone=create_mlp_backbone(in_features=5, hidden=16),
                                 label_names=["negative", "positive"])
    rng = np.random.default_rng(0)
    rows = rng.normal(size=(400, 5))
    examples = [{"x": row.tolist(), "label": "positive" if row[2] > 0 else "negative"} for row in rows]
    pipeline = task.data_pipeline(training=False)
    prepared = [pipeline.prepare(example) for example in examples]
    optimizer = torch.optim.AdamW(task.parameters(), lr=1e-2)
    order = random.Random(0)
    task.train()
    for _ in range(150):
        loss = task(pipeline.collate(order.sample(prepared, 32))).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return task.eval()


def test_a_backbone_that_declares_nothing_gets_occlusion() -> None:
    task = toy_task()
    assert task.backbone.attribution_hooks() is None
    result = explain(task, {"x": [0.5, -1.0, 2.0]})
    assert (result.method, result.kind, result.methods) == ("occlusion", "vector", ["occlusion"])
    attribution = result.attributions[0]
    assert attribution.scores.shape == (3,) and attribution.completeness is None
    assert "declares no attribution hooks" in attribution.notes[0]
    with torch.no_grad():  # occlusion of feature i = score drop when x_i becomes 0 (the fallback baseline)
        x, label = torch.tensor([[0.5, -1.0, 2.0]]), ["a", "b"].index(result.prediction["label"])
        full = torch.log_softmax(task.head(task.backbone({"x": x})), -1)[0, label]
        for i in range(3):
            cut = x.clone()
            cut[0, i] = 0
            part = torch.log_softmax(task.head(task.backbone({"x": cut})), -1)[0, label]
            assert attribution.scores[i] == pytest.approx(float(full - part), abs=1e-5)
    with pytest.raises(IncompatibleComponentsError, match=r"does not apply .* Methods that do: occlusion$"):
        explain(task, {"x": [0.5, -1.0, 2.0]}, method="ig")
    with pytest.raises(UnknownComponentError, match="did you mean 'integrated-gradients'"):
        explain(task, {"x": [0.5, -1.0, 2.0]}, method="integrated-gradient")


def test_a_third_party_backbone_declares_hooks_and_gets_integrated_gradients(tabular_task, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert tabular_task.backbone.attribution_hooks().kind == "vector"
    rng = np.random.default_rng(1)
    top, drops = [], []
    for index, row in enumerate(rng.normal(size=(30, 5))):
        result = explain(tabular_task, {"x": row.tolist()})
        attribution = result.attributions[0]
        assert result.method == "integrated-gradients" and attribution.completeness["within_tolerance"]
        total = attribution.completeness["f_input"] - attribution.completeness["f_baseline"]
        assert float(attribution.scores.sum()) == pytest.approx(total, abs=max(0.05 * abs(total), 1e-5))
        top.append(int(np.argmax(attribution.scores)) == 2)
        drop = deletion(result, fraction=0.2, seed=index)  # one feature of five: the top one vs a random one
        drops.append(drop["drop_top"] - drop["drop_random"])
    assert np.mean(top) >= 0.9
    assert np.mean(drops) > 0.1
    files = render(result, tmp_path)
    assert [Path(f).suffix for f in files] == [".png", ".json"]
    report = json.loads(Path(files[1]).read_text())
    assert report["declared_hooks"] and report["explanations"][0]["top"][0] == "feature 2"


def test_hooks_are_checked() -> None:
    with pytest.raises(PluginError, match="kind must be one of"):
        AttributionHooks(input="x", kind="table")
    with pytest.raises(PluginError, match="frame_size"):
        AttributionHooks(input="x", kind="waveform", frame_size=0)


def test_the_registry_takes_new_methods_and_lists_only_those_that_apply() -> None:
    class Constant(Explainer):
        name = "constant-test"
        summary = "gives every feature 1 (a test method)"

        def applies(self, subject):  # type: ignore[no-untyped-def]
            return None if subject.hooks.kind == "vector" else "vectors only"

        def attribute(self, subject, target, settings):  # type: ignore[no-untyped-def]
            return RawAttribution(values=torch.ones(subject.x.shape[1:]))

    from polygraft.explain import registry

    register_explainer(Constant())
    try:
        assert "constant-test" in explainer_names()
        result = explain(toy_task(), {"x": [1.0, 2.0, 3.0]}, method="constant-test")
        assert result.attributions[0].scores.tolist() == [1.0, 1.0, 1.0]
        assert applicable(result.subject) == ["occlusion", "constant-test"]
        with pytest.raises(Exception, match="taken by"):
            register_explainer(Constant())
    finally:
        registry._EXPLAINERS.pop("constant-test")


def test_check_helpers() -> None:
    scores = np.zeros((10, 10))
    scores[0, 9] = 1.0
    assert not pointing_hit(scores, [5, 1, 9, 5])
    assert pointing_hit(scores, [5, 1, 9, 5], tolerance=1)  # widened by one cell on every side
    assert np.isnan(rank_correlation(np.ones(4), np.arange(4.0)))
    assert rank_correlation(np.arange(4.0), -np.arange(4.0)) == pytest.approx(-1.0)
    from polygraft.explain.checks import _cells

    assert _cells(np.arange(16.0).reshape(4, 4), 2).tolist() == [[2.5, 4.5], [10.5, 12.5]]


def test_cli_explain_json_and_the_errors_of_predict(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    save_model(toy_task(), tmp_path / "run" / "model")
    run = str(tmp_path / "run")
    assert main(["explain", run, "[0.5, -1.0, 2.0]", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["method"] == "occlusion" and report["prediction"]["label"] in {"a", "b"}
    assert all(Path(f).is_file() for f in report["files"]) and str(tmp_path / "run" / "explanations") in report["files"][0]
    assert main(["explain", run, "[0.5, -1.0, 2.0]", "--output", str(tmp_path / "out")]) == 0
    assert "wrote" in capsys.readouterr().out and (tmp_path / "out").is_dir()
    assert main(["predict", run, "not json"]) == 2
    predicted = capsys.readouterr().err
    assert main(["explain", run, "not json"]) == 2
    assert capsys.readouterr().err == predicted and "expected a JSON list" in predicted
    assert main(["explain", run, "[0.5, -1.0, 2.0]", "--method", "gradcam"]) == 2
    assert "Methods that do: occlusion" in capsys.readouterr().err


def test_explain_help_imports_no_heavy_library() -> None:
    code = "from polygraft.cli import main\ntry:\n    main(['explain', '--help'])\nexcept SystemExit:\n    pass"
    assert heavy_modules_imported_by(code) == []

"""ONNX export of every task: ONNX Runtime against PyTorch (max |diff| ≤ 1e-4 at two input shapes, checked by the
exporter and again here), onnx.checker, predictions decoded from the runtime's outputs equal PyTorch's, detection's
NumPy post-processing against torchvision's, int8, the CLI and the errors that say what to do.

Classification on every first-party backbone family is exported by the conformance kit's "exports to ONNX" check
(each plugin's test_conformance); here are the other tasks and the export machinery.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import polygraft
from polygraft.errors import ExportError
from polygraft.export import export_model
from polygraft.export.graph import signature_of
from polygraft.export.onnx_export import export_onnx, run_session, session, signature_from_report
from polygraft.export.samples import collate, sample_examples
from polygraft.model_io import save_model

pytest.importorskip("onnxruntime")


def _onnx_predictions(task, directory: Path, report: dict, examples: list[dict]) -> list[dict]:
    batch = collate(task, examples)
    outputs = run_session(session(directory / "model.onnx"), signature_from_report(report), batch["inputs"])
    return task.predictions_from_outputs(outputs, batch)


def _check_parity_rows(report: dict) -> None:
    shapes = [row["inputs"] for row in report["parity"]]
    assert len(shapes) == 2 and shapes[0] != shapes[1]
    assert all(row["max_abs_diff"] <= 1e-4 for row in report["parity"])


def test_token_classification_on_bert(tmp_path: Path, tiny_bert: dict, same_predictions) -> None:
    torch.manual_seed(0)
    task = polygraft.create_task("token-classification", backbone="bert", label_names=["O", "B-LOC", "I-LOC"],
                                 backbone_options=tiny_bert).eval()
    examples = sample_examples(task)
    report = export_onnx(task, tmp_path / "onnx", examples)
    _check_parity_rows(report)
    assert report["inputs"][0]["shape"] == ["batch", "sequence"]
    # a length the graph never saw, decoded through the runtime: the same words, tags and entities as PyTorch
    unseen = [{"text": "john went to new york and paris"}, {"text": "a cat"}]
    assert same_predictions(_onnx_predictions(task, tmp_path / "onnx", report, unseen), task.predict(collate(task, unseen)))


def test_detection_boxes_after_numpy_postprocessing_match_torchvision(tmp_path: Path) -> None:
    from PIL import Image

    torch.manual_seed(0)
    task = polygraft.create_task("detection", backbone="timm", label_names=["circle", "square"],
                                 backbone_options={"model_name": "test_resnet", "features": "maps", "image_size": 64},
                                 score_thresh=0.2, nms_thresh=0.5).eval()
    with torch.no_grad():  # a head with varied scores (a fresh FCOS head scores every anchor alike: ties)
        for parameter in task.head.detector.head.parameters():
            parameter.normal_(0.0, 0.3)
    report = export_onnx(task, tmp_path / "onnx", sample_examples(task))
    _check_parity_rows(report)
    images = [{"image": Image.effect_noise((96, 80), 60).convert("RGB")},
              {"image": Image.effect_noise((40, 50), 90).convert("RGB")}]
    expected = task.predict(collate(task, images))
    got = _onnx_predictions(task, tmp_path / "onnx", report, images)
    assert all(len(p["boxes"]) > 3 for p in expected)  # enough detections (and suppressions) to compare
    for want, have in zip(expected, got):
        assert have["labels"] == want["labels"]
        assert torch.allclose(torch.tensor(have["scores"]), torch.tensor(want["scores"]), atol=2e-4)
        assert torch.allclose(torch.tensor(have["boxes"]), torch.tensor(want["boxes"]), atol=0.02)


def test_ctc_on_wav2vec2_with_vocabulary(tmp_path: Path, make_clip, same_predictions) -> None:
    torch.manual_seed(0)
    labels = ["<blank>", "<unk>", " ", "e", "n", "o"]
    task = polygraft.create_task("ctc", backbone="wav2vec2", label_names=labels,
                                 backbone_options={"size": "tiny"}).eval()
    result = export_model(save_model(task, tmp_path / "model"), "onnx", tmp_path / "onnx")
    report = result.report
    _check_parity_rows(report)
    assert report["outputs"] == ["log_probs", "lengths"]
    spec = json.loads((result.directory / "preprocessing.json").read_text())
    assert spec["labels"] == labels and spec["task"] == "ctc" and "<blank>" in spec["postprocessing"]
    assert spec["preprocessor"]["sample_rate"] == 16000
    assert {row["name"]: row["shape"] for row in spec["inputs"]}["input_values"] == ["batch", "samples"]
    clips = [make_clip(0.7, 300.0), make_clip(0.25, 500.0)]
    assert same_predictions(_onnx_predictions(task, result.directory, report, clips), task.predict(collate(task, clips)))


def test_int8_graph_is_written_and_measured(tmp_path: Path) -> None:
    torch.manual_seed(0)
    task = polygraft.create_task("classification", backbone="toy", num_classes=3,
                                 backbone_options={"in_features": 6, "hidden": 64}).eval()
    report = export_onnx(task, tmp_path, sample_examples(task), quantize="int8")
    int8 = report["int8"]
    assert (tmp_path / "model.int8.onnx").is_file() and int8["file"] == "model.int8.onnx"
    rows = int8["against_pytorch"]
    assert len(rows) == 2 and all(0 < row["max_abs_diff"] < 0.5 for row in rows)  # quantised: close, not equal
    assert all("logits_argmax_agreement" in row for row in rows)


def test_cli_exports_a_trained_run_with_its_card(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from polygraft.cli import main
    from polygraft.recipe import Recipe, run_recipe

    recipe = Recipe.from_dict({
        "task": "classification", "backbone": "toy", "backbone_options": {"in_features": 4},
        "data": {"train": {"dataset": "synthetic-classification", "size": 32, "in_features": 4},
                 "val": {"dataset": "synthetic-classification", "size": 16, "in_features": 4, "seed": 1}},
        "trainer": {"max_steps": 2, "batch_size": 8, "progress": False}, "output_dir": str(tmp_path / "run")})
    run = run_recipe(recipe).run_dir
    assert main(["export", str(run), "--format", "onnx", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    directory = Path(printed["directory"])
    assert directory == run / "exports" / "onnx"
    assert {"model.onnx", "preprocessing.json", "export.json", "README.md"} <= {p.name for p in directory.iterdir()}
    card = (directory / "README.md").read_text()
    accuracy = json.loads((run / "results.json").read_text())["val/accuracy"]
    assert f"| val/accuracy | {accuracy:.4f} |" in card
    assert "synthetic-classification" in card and "random initialisation" in card and "max |diff|" in card


def test_errors_say_what_to_do(tmp_path: Path) -> None:
    torch.manual_seed(0)
    task = polygraft.create_task("classification", backbone="toy", num_classes=2, backbone_options={"in_features": 3})
    model_dir = save_model(task, tmp_path / "model")
    with pytest.raises(ExportError, match="did you mean 'onnx'"):
        export_model(model_dir, "onxx")
    with pytest.raises(ExportError, match="--format onnx --quantize int8"):
        export_model(model_dir, "hf", quantize="int8")
    with pytest.raises(ExportError, match=r"no native transformers class.*--format onnx"):
        export_model(model_dir, "hf", tmp_path / "hf")
    assert not (tmp_path / "hf").exists() and not list(tmp_path.glob(".hf*"))  # a failed export leaves nothing
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(ExportError, match="not an earlier polygraft export"):
        export_model(model_dir, "onnx", tmp_path / "mine")
    with pytest.raises(ExportError, match=r"--format timm holds timm image classifiers.*--format onnx"):
        export_model(model_dir, "timm", tmp_path / "timm")
    batch = collate(task, sample_examples(task))
    with pytest.raises(ExportError, match="only tensors"):
        signature_of(task, {**batch["inputs"], "names": ["a", "b"]})


def test_nested_inputs_of_a_fusion_style_backbone_export_without_exporter_changes(tmp_path: Path) -> None:
    """A backbone whose inputs are a dict of per-branch input dicts (what the fusion backbone will be) exports
    through the same exporter: its graph inputs are named ``branch.key`` and each branch's axes stay its own."""
    from torch import nn

    from polygraft.builtin.toy import ToyBackbone, VectorPreprocessor
    from polygraft.features import Features
    from polygraft.interfaces import Backbone, Preprocessor

    class TwoBranchPreprocessor(Preprocessor):
        input_key = "x"

        def __init__(self) -> None:
            self.vector, self.sequence = VectorPreprocessor(3), VectorPreprocessor(2)

        def __call__(self, example):
            return {"dense": self.vector({"x": example["x"]}), "frames": self.sequence({"x": example["frames"]})}

        def collate(self, items):
            return {"dense": self.vector.collate([i["dense"] for i in items]),
                    "frames": self.sequence.collate([i["frames"] for i in items])}

    class TwoBranch(Backbone):
        modality = "any"

        def __init__(self) -> None:
            super().__init__()
            self.dense, self.frames = ToyBackbone(3, 8, 1), ToyBackbone(2, 8, 1)
            self.feature_dim = 16
            self._pre = TwoBranchPreprocessor()

        @property
        def preprocessor(self):
            return self._pre

        def forward(self, inputs):
            return Features(pooled=torch.cat([self.dense(inputs["dense"]).pool(),
                                              self.frames(inputs["frames"]).pool()], dim=-1))

        def layer_groups(self) -> list[nn.Module]:
            return [self.dense, self.frames]

        def export_input_axes(self, inputs):
            return {"dense": self.dense.export_input_axes(inputs["dense"]),
                    "frames": {key: {1: "frames_" + name} for key, axes in
                               self.frames.export_input_axes(inputs["frames"]).items() for name in axes.values()}}

    torch.manual_seed(0)
    task = polygraft.create_task("classification", backbone=TwoBranch(), label_names=["a", "b"]).eval()
    examples = [{"x": [1.0, 2.0, 3.0], "frames": [[0.5, 1.0]] * 4}, {"x": [0.0, 1.0, 0.5], "frames": [[1.0, 0.0]] * 2},
                {"x": [2.0, 0.0, 1.0], "frames": [[0.2, 0.1]] * 3}]
    report = export_onnx(task, tmp_path, examples)
    assert [(row["name"], row["shape"]) for row in report["inputs"]] == [
        ("dense.x", ["batch", 3]), ("frames.x", ["batch", "frames_sequence", 2]),
        ("frames.mask", ["batch", "frames_sequence"])]
    _check_parity_rows(report)

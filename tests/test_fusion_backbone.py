"""The fusion backbone on toy branches: fusion kinds, missing modalities, modality dropout, participation of every
encoder, layer groups, auxiliary heads, rebuilding from a run directory and predict with fields left out, and the
errors of a mistyped recipe."""

from __future__ import annotations

import io
import json
import random
import shutil
from pathlib import Path

import pytest
import torch

import polygraft
from polygraft.errors import ConfigError, DataError, UnknownComponentError
from polygraft.interfaces import ListSource

BRANCHES = {"a": {"backbone": "toy", "backbone_options": {"in_features": 2, "hidden": 8}},
            "b": {"backbone": "toy", "backbone_options": {"in_features": 3, "hidden": 6}, "fields": ["bee"]}}


def fused(**options):
    return polygraft.create_backbone("fusion", branches=options.pop("branches", BRANCHES), hidden=16, **options)


def batch_of(backbone, examples):
    pre = backbone.preprocessor
    return pre.collate([pre(example) for example in examples])


def rows(count: int = 64, seed: int = 0) -> list[dict]:
    """Label = sign of a[0] + bee[1]; a is missing in every 5th row, bee in every 7th (never both)."""
    rng = random.Random(seed)
    out = []
    for i in range(count):
        y = i % 2
        example = {"a": [y + rng.gauss(0, 0.3), rng.gauss(0, 1)], "bee": [rng.gauss(0, 1), y - rng.gauss(0, 0.3), 1.0],
                   "label": str(y), "_origin": f"rows:{i}"}
        if i % 5 == 0 and i % 7:
            example["a"] = None
        if i % 7 == 0 and i % 5:
            del example["bee"]
        out.append(example)
    return out


@pytest.mark.parametrize(("kind", "width"), [("mlp", 16), ("transformer", 16), ("concat", 14)])
def test_each_kind_gives_modality_free_features(kind: str, width: int) -> None:
    backbone = fused(fusion=kind).eval()
    features = backbone(batch_of(backbone, [{"a": [1.0, 2.0], "bee": [0.0, 1.0, 2.0]}, {"bee": [1.0, 1.0, 1.0]}]))
    assert backbone.feature_dim == width and features.pool().shape == (2, width)
    assert features.branch_present["a"].tolist() == [True, False]


def test_a_missing_branch_is_its_learned_embedding_whatever_the_other_rows_hold() -> None:
    backbone = fused(fusion="mlp").eval()
    alone = backbone(batch_of(backbone, [{"bee": [1.0, 2.0, 3.0]}])).pooled
    beside = backbone(batch_of(backbone, [{"bee": [1.0, 2.0, 3.0], "a": ""}, {"a": [5.0, 5.0], "bee": [0.0, 0.0, 0.0]}]))
    torch.testing.assert_close(beside.pooled[:1], alone)
    with torch.no_grad():
        backbone.fusion.missing["a"].add_(1.0)
    assert not torch.allclose(backbone(batch_of(backbone, [{"bee": [1.0, 2.0, 3.0]}])).pooled, alone)


def test_every_encoder_gets_a_gradient_when_its_branch_is_absent_or_dropped() -> None:
    backbone = fused(fusion="transformer", modality_dropout={"a": 0.9}).train()
    out = backbone(batch_of(backbone, [{"a": [1.0, 2.0]}, {"a": [0.5, 0.5]}]))  # no example has bee
    out.pooled.sum().backward()
    unused = [name for name, p in backbone.named_parameters() if p.grad is None]
    assert unused == []
    assert all(float(p.grad.abs().sum()) == 0.0 for p in backbone.branches["b"].parameters())


def test_modality_dropout_never_drops_every_branch_of_an_example() -> None:
    backbone = fused(modality_dropout=0.95).train()
    torch.manual_seed(0)
    available = {"a": torch.tensor([True, True, False, True] * 50), "b": torch.tensor([True, False, True, True] * 50)}
    kept = backbone._drop(dict(available))
    assert bool((kept["a"] | kept["b"]).all())
    assert not bool((kept["a"] & ~available["a"]).any())
    assert int(kept["a"].sum() + kept["b"].sum()) < 260  # most available branches were dropped


def test_layer_groups_align_branches_from_the_top_and_hold_every_parameter_once() -> None:
    backbone = fused()
    groups = backbone.layer_groups()
    assert len(groups) == 4 and groups[-1] is backbone.fusion  # toy has 3 groups each, then the fusion layers
    held = [id(p) for group in groups for p in group.parameters()]
    assert sorted(held) == sorted(id(p) for p in backbone.parameters())
    backbone.freeze(1)
    assert not any(p.requires_grad for p in backbone.branches.parameters())


def test_fused_classifier_trains_saves_and_predicts_with_any_field_left_out(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    data = ListSource(rows(), label_names=["0", "1"])
    task = polygraft.create_task("classification", backbone="fusion", label_names=["0", "1"], backbone_options={
        "branches": BRANCHES, "hidden": 16, "modality_dropout": 0.2, "auxiliary_loss_weight": 0.3})
    assert set(task.auxiliary) == {"a", "b"}
    config = polygraft.TrainerConfig(max_steps=40, batch_size=8, lr=5e-3, progress=False)
    result = polygraft.Trainer(config, output_dir=tmp_path / "run").fit(task, train_data=data, val_data=data)
    assert result.metrics["val/accuracy"] > 0.8
    moved = tmp_path / "elsewhere"
    shutil.copytree(tmp_path / "run" / "model", moved)
    model = polygraft.load(moved)
    pre = model.backbone.preprocessor
    examples = [pre.read_fields({"a": "[1.0, 0.0]"}), pre.read_input(json.dumps({"bee": [0.0, 1.0, 1.0]})),
                pre.read_fields({"a": "[0.0, 0.0]", "bee": "[0.0, -1.0, 1.0]"})]
    predictions = model.predict_examples(examples)
    assert [p["label"] for p in predictions] == ["1", "1", "0"]
    saved = task.eval().predict_examples(examples)
    assert [p["score"] for p in predictions] == pytest.approx([p["score"] for p in saved])
    with pytest.raises(ConfigError, match="did you mean 'bee'"):
        pre.read_fields({"be": "[1, 2, 3]"})
    with pytest.raises(DataError, match="every field is missing"):
        model.predict_examples([pre.read_fields({"a": ""})])
    # the CLI: JSON lines on standard input (any field left out) and --field options give the same predictions
    from polygraft.cli import main as cli

    lines = [json.dumps({"a": [1.0, 0.0]}), json.dumps({"bee": [0.0, 1.0, 1.0]})]
    monkeypatch.setattr("sys.stdin", io.StringIO("\n".join(lines) + "\n"))
    capsys.readouterr()
    assert cli(["predict", str(moved), "-", "--json"]) == 0
    assert [p["label"] for p in json.loads(capsys.readouterr().out)] == ["1", "1"]
    assert cli(["predict", str(moved), "--field", "a=[0.0, 0.0]", "--field", "bee=[0.0, -1.0, 1.0]", "--json"]) == 0
    [only] = json.loads(capsys.readouterr().out)
    assert only["label"] == "0" and only["score"] == pytest.approx(predictions[2]["score"])


def test_a_row_with_every_field_missing_names_its_origin() -> None:
    backbone = fused()
    with pytest.raises(DataError, match=r"rows:3: every field is missing: none of \['a', 'bee'\]"):
        backbone.preprocessor({"a": None, "bee": [], "label": "1", "_origin": "rows:3"})


@pytest.mark.parametrize(("options", "error", "message"), [
    ({"branches": {"a": {"backbone": "tyo"}}}, UnknownComponentError,
     r"branches\.a\.backbone: unknown backbone 'tyo'\. Did you mean 'toy'"),
    ({"branches": BRANCHES, "fusoin": "mlp"}, ConfigError, r"no option 'fusoin'; did you mean 'fusion'"),
    ({"branches": BRANCHES, "fusion": "trasformer"}, ConfigError, r"did you mean 'transformer'"),
    ({"branches": {"a": {"backbone": "toy", "feilds": ["a"]}}}, ConfigError, r"unknown key 'feilds'; did you mean 'fields'"),
    ({"branches": BRANCHES, "modality_dropout": {"bb": 0.2}}, ConfigError, r"'bb', which is not a branch; did you mean 'b'"),
    ({"branches": {"a": {"backbone": "toy", "backbone_options": {"in_featuers": 2}}}}, ConfigError,
     r"\(backbone_options\.branches\.a\.backbone_options\) has no option 'in_featuers'; did you mean 'in_features'"),
    ({"branches": {"a": {"backbone": "fusion"}}}, ConfigError, "cannot itself be a fusion backbone"),
])
def test_mistyped_recipes_get_one_clear_error(options: dict, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        polygraft.create_backbone("fusion", **options)


def test_a_branch_set_to_null_is_left_out() -> None:
    backbone = polygraft.create_backbone("fusion", fusion="concat", branches={**BRANCHES, "b": None})
    assert list(backbone.branches) == ["a"] and backbone.feature_dim == 8

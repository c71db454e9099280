"""One regression test per bad input of issue 10 (COCO structure, an 8-bit encoding over a BOM, detection options
that cannot work), each with small generated files: a typed polygraft error whose message names the file and the
entry, raised before any training, and never a library traceback."""

from __future__ import annotations

import codecs
import json
from pathlib import Path

import pytest
import yaml
from PIL import Image

import polygraft
from polygraft.cli import main
from polygraft.errors import ConfigError, DataError

DETECTOR = {"model_name": "test_resnet", "features": "maps", "image_size": 64}


def coco_files(directory: Path, **changes: object) -> Path:
    """Two 32x32 images and a COCO file (annotation ids 1..2); ``changes`` replace top-level entries."""
    for name in ("a.png", "b.png"):
        Image.new("RGB", (32, 32), "grey").save(directory / name)
    data = {"images": [{"id": 1, "file_name": "a.png", "width": 32, "height": 32},
                       {"id": 2, "file_name": "b.png", "width": 32, "height": 32}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [2, 2, 10, 10]},
                            {"id": 2, "image_id": 2, "category_id": 1, "bbox": [4, 4, 12, 8]}],
            "categories": [{"id": 1, "name": "square"}]}
    data.update(changes)
    path = directory / "train.json"
    path.write_text(json.dumps(data))
    return path


def finetune(tmp_path: Path, capsys: pytest.CaptureFixture[str], annotations: Path, *overrides: str) -> str:
    """``polygraft finetune`` on a detection recipe; returns stderr after checking that it failed cleanly."""
    recipe = {"task": "detection", "backbone": "timm", "backbone_options": DETECTOR,
              "data": {"train": {"dataset": "coco", "annotations": str(annotations)}},
              "trainer": {"max_steps": 2, "batch_size": 2, "progress": False}, "output_dir": str(tmp_path / "run")}
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    assert main(["finetune", str(path), *overrides]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err
    assert not (tmp_path / "run" / "checkpoints").exists() and not (tmp_path / "run" / "model").exists()
    return err


def test_coco_annotation_without_image_id(tmp_path: Path) -> None:
    path = coco_files(tmp_path, annotations=[{"id": 7, "category_id": 1, "bbox": [1, 1, 5, 5]}])
    with pytest.raises(DataError, match=r"train\.json: annotation id 7 has no 'image_id'"):
        polygraft.load_dataset("coco", annotations=str(path))


def test_coco_category_without_id(tmp_path: Path) -> None:
    path = coco_files(tmp_path, categories=[{"name": "square"}])
    with pytest.raises(DataError, match=r"train\.json: category #0 \('square'\) has no 'id'"):
        polygraft.load_dataset("coco", annotations=str(path), skip_invalid=True)


def test_coco_images_not_a_list(tmp_path: Path) -> None:
    path = coco_files(tmp_path, images={"1": "a.png"})
    with pytest.raises(DataError, match=r"train\.json: 'images' must be a list of objects, got dict"):
        polygraft.load_dataset("coco", annotations=str(path), skip_invalid=True)


def test_coco_non_utf8_bytes(tmp_path: Path) -> None:
    path = coco_files(tmp_path)
    path.write_bytes(path.read_bytes().replace(b'"square"', b'"carr\xe9"'))
    with pytest.raises(DataError, match=r"train\.json:1: not valid UTF-8 \(byte 0xe9"):
        polygraft.load_dataset("coco", annotations=str(path))


def test_coco_nan_box_is_refused_before_training(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Today's symptom was "loss is nan" mid-training; now the recipe stops while loading, naming the box."""
    path = coco_files(tmp_path, annotations=[{"id": 1, "image_id": 1, "category_id": 1,
                                              "bbox": [2, 2, float("nan"), 10]}])
    err = finetune(tmp_path, capsys, path)
    assert "train.json: annotation id 1 (image a.png): box [2, 2, nan, 10] has a NaN or infinite coordinate" in err
    assert "loss" not in err


def test_latin1_over_a_utf8_bom_finds_the_first_column(tmp_path: Path) -> None:
    path = tmp_path / "excel.csv"
    path.write_bytes(codecs.BOM_UTF8 + b"text,label\ncaf\xe9,pos\ntea,neg\n")
    with pytest.raises(DataError, match=r"excel\.csv:2: not valid UTF-8"):
        polygraft.load_dataset("text-csv", path=str(path))
    source = polygraft.load_dataset("text-csv", path=str(path), encoding="latin-1")  # what that error suggests
    assert source[0]["text"] == "café" and source.label_names == ["neg", "pos"]


@pytest.mark.parametrize("channels", [16, 32, 48])
def test_detection_fpn_channels_that_cannot_work_are_refused_with_the_rule(tmp_path: Path, channels: int,
                                                                         capsys: pytest.CaptureFixture[str]) -> None:
    rule = rf"fpn_channels must be a multiple of 32 and at least 64 \(64, 96, 128, \.\.\.\), got {channels}"
    with pytest.raises(ConfigError, match=rule):
        polygraft.create_task("detection", backbone="timm", label_names=["square"], backbone_options=DETECTOR,
                              fpn_channels=channels)
    err = finetune(tmp_path, capsys, coco_files(tmp_path), f"task_options.fpn_channels={channels}")
    assert f"got {channels}" in err and "GroupNorm" in err


def test_detection_allowed_fpn_channels_predict_on_a_single_image() -> None:
    """The smallest allowed value on the smallest input: one image whose P6/P7 maps are 1x1."""
    for options in ({"fpn_channels": 64}, {"fpn_channels": 96}, {"fpn_channels": 8, "head_convs": 0}):
        task = polygraft.create_task("detection", backbone="timm", label_names=["square"], backbone_options=DETECTOR,
                                     score_thresh=0.0, **options)
        task.eval()
        batch = task.collate([task.prepare_example({"image": Image.new("RGB", (64, 64), "white")})])
        prediction = task.predict(batch)[0]
        assert len(prediction["boxes"]) == len(prediction["scores"]) > 0, options

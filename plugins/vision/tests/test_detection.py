"""Detection on generated shapes: FPN + FCOS on timm feature maps, COCO mAP, predictions, save and load."""

from __future__ import annotations

import math

import pytest
import torch
from PIL import Image

import polygraft
from polygraft import Trainer, TrainerConfig
from polygraft.errors import DataError, IncompatibleComponentsError

OPTIONS = {"model_name": "test_resnet", "features": "maps", "image_size": 64}


def make_task(catalog, labels=("circle", "square", "triangle"), **options):
    return polygraft.create_task("detection", catalog=catalog, backbone="timm", label_names=list(labels),
                                 backbone_options=OPTIONS, **options)


def test_pipeline_scales_and_flips_boxes(catalog):
    task = make_task(catalog)
    example = {"image": Image.new("RGB", (128, 32)), "boxes": [[16, 8, 48, 24]], "labels": ["square"]}
    item = task.data_pipeline(training=False).prepare(example)
    assert item["boxes"].tolist() == [[8.0, 16.0, 24.0, 48.0]]  # x * 0.5, y * 2
    pipe = task.data_pipeline(training=True)
    pipe.flip_prob = 1.0
    flipped = pipe.prepare(example)
    assert flipped["boxes"].tolist() == [[40.0, 16.0, 56.0, 48.0]]
    assert torch.equal(flipped["inputs"]["pixel_values"], item["inputs"]["pixel_values"].flip(-1))


def test_pipeline_reads_image_paths(catalog, tmp_path, write_image):
    path = write_image(tmp_path / "wide.png", size=(128, 32))
    item = make_task(catalog).prepare_example({"image": str(path), "boxes": [[16, 8, 48, 24]], "labels": ["circle"]})
    assert item["boxes"].tolist() == [[8.0, 16.0, 24.0, 48.0]]


def test_bad_boxes_and_labels(catalog):
    pipe = make_task(catalog).data_pipeline(training=False)
    image = Image.new("RGB", (64, 64))
    with pytest.raises(DataError, match="zero or negative"):
        pipe.prepare({"image": image, "boxes": [[10, 10, 5, 20]], "labels": ["circle"], "_origin": "x.png"})
    with pytest.raises(DataError, match="never seen"):
        pipe.prepare({"image": image, "boxes": [[1, 1, 5, 5]], "labels": ["hexagon"]})


def test_needs_feature_maps(catalog):
    with pytest.raises(IncompatibleComponentsError, match="maps"):
        polygraft.create_task("detection", catalog=catalog, backbone="toy", label_names=["a"])


def test_trains_on_shapes_and_metrics_are_finite(catalog, shapes_dir, tmp_path):
    data = polygraft.load_dataset("coco", catalog=catalog, annotations=str(shapes_dir / "annotations.json"))
    train, val = data.split([16, 8], seed=0)
    task = make_task(catalog, labels=data.label_names, fpn_channels=64, extra_levels=0)
    result = Trainer(TrainerConfig(max_steps=6, batch_size=8, lr=2e-3, progress=False),
                     output_dir=tmp_path / "run").fit(task, train_data=train, val_data=val)
    for key in ("val/map", "val/map_50", "val/map_75"):
        assert math.isfinite(result.metrics[key]) and 0.0 <= result.metrics[key] <= 1.0
    loaded = polygraft.load(result.run_dir, catalog=catalog)
    batch = loaded.collate([loaded.prepare_example(val[0])])
    prediction = loaded.predict(batch)[0]
    assert set(prediction) == {"boxes", "labels", "scores"}
    assert len(prediction["boxes"]) == len(prediction["labels"]) == len(prediction["scores"])
    assert all(label in data.label_names for label in prediction["labels"])


def test_predict_command_draws_detections(tmp_path, write_image, capsys):
    import json

    from polygraft.cli import main
    from polygraft.model_io import save_model

    task = make_task(None, score_thresh=0.0)
    save_model(task, tmp_path / "run" / "model")
    image = write_image(tmp_path / "scene.png", size=(64, 64))
    out = tmp_path / "drawn.png"
    assert main(["predict", str(tmp_path / "run"), str(image), "--draw", str(out), "--json"]) == 0
    prediction, = json.loads(capsys.readouterr().out)
    assert set(prediction) >= {"boxes", "labels", "scores"}
    assert out.is_file()
    original = Image.open(image).convert("RGB")
    assert Image.open(out).size == original.size
    from polygraft.tasks.detection import draw_detections

    boxed = draw_detections(original, {"boxes": [[8, 8, 40, 40]], "labels": ["square"], "scores": [0.9]},
                            str(tmp_path / "boxed.png"))
    pixels = Image.open(boxed).convert("RGB")
    assert pixels.getpixel((8, 20)) != original.getpixel((8, 20))  # the box edge is drawn
    assert pixels.getpixel((60, 60)) == original.getpixel((60, 60))  # outside it nothing changes


def test_training_flips_are_drawn_in_prepare_so_training_examples_are_not_kept(catalog) -> None:
    task = make_task(catalog)
    assert task.data_pipeline(training=True).deterministic() is False  # a random flip per example and epoch
    assert task.data_pipeline(training=False).deterministic() is True  # evaluation: prepared once, then kept

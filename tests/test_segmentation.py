"""Segmentation: mIoU and pixel accuracy against scikit-learn's confusion matrix on the same predictions (ignore
index, absent classes, masks larger than the model input), bad masks, the mask overlay of `predict --draw`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.metrics import confusion_matrix, jaccard_score

import polygraft
from polygraft.cli import main
from polygraft.errors import ConfigError, DataError
from polygraft.interfaces import ListSource
from polygraft.tasks.segmentation_metrics import decode_masks, draw_mask_overlay, segmentation_scores

CLASSES = ["background", "square", "disc", "never"]  # "never" occurs in no mask
IGNORE = 255


def reference_scores(truth: np.ndarray, predicted: np.ndarray, classes: int) -> dict[str, float]:
    """Pixel accuracy and mIoU from scikit-learn on the labelled pixels (classes absent from truth and prediction
    left out of the mean)."""
    valid = truth != IGNORE
    y_true, y_pred = truth[valid], predicted[valid]
    matrix = confusion_matrix(y_true, y_pred, labels=list(range(classes)))
    present = [c for c in range(classes) if matrix[c, :].sum() + matrix[:, c].sum() > 0]
    iou = jaccard_score(y_true, y_pred, labels=present, average=None)
    return {"pixel_accuracy": float(np.trace(matrix) / matrix.sum()), "miou": float(np.mean(iou)),
            **{f"iou_{CLASSES[c]}": float(v) for c, v in zip(present, iou)}}


def test_scores_from_the_confusion_matrix_match_scikit_learn() -> None:
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 3, size=(5, 20, 20))
    truth[rng.random(truth.shape) < 0.1] = IGNORE
    predicted = np.where(rng.random(truth.shape) < 0.7, truth, rng.integers(0, 3, size=truth.shape))
    predicted[predicted == IGNORE] = 0
    valid = truth != IGNORE
    matrix = np.zeros((4, 4), dtype=np.int64)
    np.add.at(matrix, (truth[valid], predicted[valid]), 1)
    ours = segmentation_scores(torch.tensor(matrix), CLASSES)
    reference = reference_scores(truth, predicted, 4)
    assert set(ours) - {"mean_class_accuracy"} == set(reference)  # "never" has no IoU at all
    for key, value in reference.items():
        assert ours[key] == pytest.approx(value, abs=1e-12), key


def scene(size: tuple[int, int], seed: int, *, ignore_border: bool = True) -> dict[str, object]:
    """A square and a disc on noise, with exact masks; unlabelled pixels around the square (as VOC's borders)."""
    rng = np.random.default_rng(seed)
    width, height = size
    pixels = rng.integers(0, 60, size=(height, width, 3)).astype(np.uint8)
    mask = np.zeros((height, width), dtype=np.uint8)
    x, y, s = int(rng.integers(0, width // 2)), int(rng.integers(0, height // 2)), min(width, height) // 3
    mask[y:y + s, x:x + s] = 1
    if ignore_border:
        mask[max(y - 1, 0), x:x + s] = IGNORE
    yy, xx = np.mgrid[:height, :width]
    disc = (yy - height * 0.75) ** 2 + (xx - width * 0.75) ** 2 < (s / 2) ** 2
    mask[disc & (mask == 0)] = 2
    pixels[mask == 1] = (230, 80, 80)
    pixels[mask == 2] = (80, 80, 230)
    return {"image": Image.fromarray(pixels), "mask": mask, "_origin": f"scene{seed}.png"}


def make_task(**options: object) -> polygraft.interfaces.Task:
    torch.manual_seed(0)
    return polygraft.create_task("segmentation", backbone="timm", label_names=CLASSES,
                                 backbone_options={"model_name": "test_resnet", "features": "maps", "image_size": 32},
                                 channels=16, **options)


def test_task_metrics_equal_the_reference_on_its_own_predictions_at_the_masks_resolution() -> None:
    task = make_task().eval()
    # 48x40 and 32x32 masks scored at their own size (the model sees 32x32), in batches of uneven sizes
    examples = [scene((48, 40), i) for i in range(3)] + [scene((32, 32), 10 + i) for i in range(2)]
    pipeline = task.data_pipeline(training=False)
    task.reset_metrics()
    truths, predictions = [], []
    for group in (examples[:2], examples[2:3], examples[3:]):
        batch = pipeline.collate([pipeline.prepare(e) for e in group])
        with torch.no_grad():
            task.update_metrics(batch, task(batch))
        predictions += task.predict_masks(batch)
        truths += [e["mask"] for e in group]
    ours = task.compute_metrics()
    reference = reference_scores(np.concatenate([t.ravel() for t in truths]),
                                 np.concatenate([p.ravel() for p in predictions]), len(CLASSES))
    for key, value in reference.items():
        assert ours[key] == pytest.approx(value, abs=1e-12), key


def test_training_learns_the_scenes_and_predict_draws_the_overlay(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    train = ListSource([scene((32, 32), i) for i in range(24)], label_names=CLASSES)
    val = ListSource([scene((40, 40), 100 + i) for i in range(6)], label_names=CLASSES)
    task = make_task()
    trainer = polygraft.Trainer({"max_steps": 40, "batch_size": 8, "lr": 1e-2, "progress": False},
                                output_dir=tmp_path / "run")
    metrics = trainer.fit(task, train_data=train, val_data=val).metrics
    assert metrics["val/pixel_accuracy"] > 0.85 and metrics["val/iou_square"] > 0.3
    assert list((tmp_path / "run").rglob("confusion.png"))
    picture = scene((40, 40), 7, ignore_border=False)
    picture["image"].save(tmp_path / "scene.png")
    overlay = tmp_path / "overlay.png"
    assert main(["predict", str(tmp_path / "run"), str(tmp_path / "scene.png"), "--draw", str(overlay),
                 "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    prediction = printed[0] if isinstance(printed, list) else printed  # `predict --json` may print a list
    assert prediction["size"] == [40, 40] and sum(prediction["pixel_fractions"].values()) == pytest.approx(1, abs=1e-3)
    mask = decode_masks(prediction["masks"], CLASSES)
    assert mask.shape == (40, 40) and Image.open(overlay).size == (40, 40)
    assert set(prediction["pixel_fractions"]) == {CLASSES[c] for c in np.unique(mask)}


def test_overlay_tints_object_pixels_and_leaves_the_background(tmp_path: Path) -> None:
    image = Image.fromarray(np.full((120, 120, 3), 40, dtype=np.uint8))
    mask = np.zeros((120, 120), dtype=np.int64)
    mask[60:100, 20:50], mask[70:110, 70:110] = 1, 2
    path = draw_mask_overlay(image, mask, CLASSES, str(tmp_path / "overlay.png"))
    drawn = np.asarray(Image.open(path).convert("RGB")).astype(int)
    changed = np.abs(drawn - 40).sum(-1) > 0
    below_legend = np.zeros_like(changed)
    below_legend[40:] = True  # the legend (two classes) sits in the top-left corner
    assert changed[(mask != 0) & below_legend].all() and not changed[(mask == 0) & below_legend].any()
    assert not (drawn[mask == 1] == drawn[mask == 2][0]).all(-1).any()  # one colour per class


def test_bad_masks_name_their_file() -> None:
    task = make_task()
    example = scene((32, 32), 0)
    with pytest.raises(DataError, match=r"scene0.png: the mask is 16x32 but its image is 32x32"):
        task.prepare_example({**example, "mask": example["mask"][:, :16]})
    wrong = example["mask"].copy()
    wrong[0, 0] = 7
    with pytest.raises(DataError, match=r"scene0.png: mask value\(s\) \[7\] are not classes"):
        task.prepare_example({**example, "mask": wrong})
    with pytest.raises(DataError, match="is a RGB image"):
        task.prepare_example({**example, "mask": Image.new("RGB", (32, 32))})
    with pytest.raises(ConfigError, match="ignore_index 1 is a class"):
        make_task(ignore_index=1)


def test_an_all_unlabelled_batch_has_a_zero_loss_not_nan() -> None:
    task = make_task().train()
    example = scene((32, 32), 0)
    unlabelled = task.prepare_example({**example, "mask": np.full((32, 32), IGNORE, dtype=np.uint8)})
    batch = task.collate([unlabelled, unlabelled])
    loss = task(batch).loss
    loss.backward()
    assert float(loss.detach()) == 0.0


def test_deeplabv3_decoder_trains() -> None:
    task = make_task(decoder="deeplabv3").train()
    batch = task.collate([task.prepare_example(scene((32, 32), i)) for i in range(2)])
    loss = task(batch).loss
    loss.backward()
    assert torch.isfinite(loss.detach()) and task.head.deeplab[0].convs[0][0].weight.grad is not None

"""Image explanations on a tiny timm CNN trained on one-shape scenes (the synthetic-shapes generator).

The pointing game (the map's maximum inside the shape's box), deletion and model randomisation are checked on
it; ViT token maps, detection's one map per box and the PNG overlay on small random-init models.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch

import polygraft
from polygraft.explain import Settings, explain, render
from polygraft.explain.checks import deletion, pointing_hit, randomised_copy, rank_correlation
from polygraft_vision.attribution import TokensToMap
from polygraft_vision.shapes import SHAPES, draw_scene

SIZE = 48


def scenes(count: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    examples = []
    for _ in range(count):
        image, objects = draw_scene(rng, image_size=SIZE, classes=SHAPES, max_shapes=1, min_size=8, max_size=16)
        examples.append({"image": image, "label": objects[0][0], "box": objects[0][1]})
    return examples


@pytest.fixture(scope="module")
def shapes_model():  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    task = polygraft.create_task("classification", backbone="timm", label_names=list(SHAPES), backbone_options={
        "model_name": "test_resnet", "image_size": SIZE, "crop_pct": 1.0, "model_kwargs": {"output_stride": 8}})
    pipeline = task.data_pipeline(training=False)
    prepared = [pipeline.prepare(example) for example in scenes(300, seed=0)]
    optimizer = torch.optim.AdamW(task.parameters(), lr=3e-3)
    rng = random.Random(0)
    task.train()
    for _ in range(70):
        loss = task(pipeline.collate(rng.sample(prepared, 16))).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return task.eval()


def test_maps_point_at_the_shape(shapes_model) -> None:  # type: ignore[no-untyped-def]
    test = scenes(20, seed=1)
    ig_hits, cam_inside, correct = [], [], []
    for example in test:
        ig = explain(shapes_model, example, method="integrated-gradients")
        correct.append(ig.prediction["label"] == example["label"])
        assert ig.attributions[0].completeness["within_tolerance"]
        ig_hits.append(pointing_hit(ig.attributions[0].scores, example["box"]))
        cam = explain(shapes_model, example, method="gradcam").attributions[0].scores
        assert cam.shape == (SIZE, SIZE) and cam.min() >= 0 and cam.max() <= 1
        x0, y0, x1, y1 = example["box"]
        inside = np.zeros(cam.shape, dtype=bool)
        inside[y0:y1, x0:x1] = True
        cam_inside.append(cam[inside].mean() > 2 * cam[~inside].mean())
    assert np.mean(correct) >= 0.8
    assert np.mean(ig_hits) >= 0.9, f"IG pointing game {np.mean(ig_hits):.0%}"
    assert np.mean(cam_inside) >= 0.9, f"Grad-CAM mass inside the box in {np.mean(cam_inside):.0%}"


def test_deletion_and_randomisation(shapes_model) -> None:  # type: ignore[no-untyped-def]
    randomised = randomised_copy(shapes_model, seed=1)
    drops, correlations = {"top": [], "random": []}, {"gradcam": [], "integrated-gradients": []}
    for index, example in enumerate(scenes(12, seed=2)):
        for method in correlations:
            result = explain(shapes_model, example, method=method)
            label = result.attributions[0].label
            other = explain(randomised, example, method=method, target=label).attributions[0].scores
            correlations[method].append(rank_correlation(result.attributions[0].scores, other))
            if method == "integrated-gradients":
                drop = deletion(result, fraction=0.2, seed=index)
                drops["top"].append(drop["drop_top"])
                drops["random"].append(drop["drop_random"])
    assert np.mean(drops["top"]) > np.mean(drops["random"])
    for method, values in correlations.items():
        # NaN: the randomised map is constant (Grad-CAM's ReLU can leave nothing of a random network), undefined
        defined = [v for v in values if np.isfinite(v)]
        assert len(defined) >= len(values) // 2, f"{method}: {len(values) - len(defined)} constant maps"
        assert np.mean(defined) < 0.3, f"{method}: rank correlation {np.mean(defined):.2f} after re-initialising"


def test_png_overlay_and_method_errors(shapes_model, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    example = scenes(1, seed=3)[0]
    example["image"].save(tmp_path / "scene.png")
    result = explain(shapes_model, str(tmp_path / "scene.png"))
    assert result.method == "gradcam" and result.methods == ["gradcam", "integrated-gradients", "occlusion"]
    files = render(result, tmp_path / "out")
    assert [Path(f).name for f in files] == ["scene-gradcam.png", "scene-gradcam-maps.npz", "scene-gradcam.json"]
    assert Path(files[0]).stat().st_size > 10_000
    with np.load(files[1]) as maps:
        assert maps["map_0"].shape == (SIZE, SIZE)


def test_vit_tokens_become_a_map_in_row_major_order() -> None:
    tokens = torch.arange(1 + 6, dtype=torch.float32).reshape(1, 7, 1)  # a class token, then 2 x 3 patches
    grid = TokensToMap(prefix=1, grid=(2, 3))(tokens)
    assert grid.shape == (1, 1, 2, 3) and grid[0, 0].tolist() == [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]
    task = polygraft.create_task("classification", backbone="timm", label_names=["a", "b"],
                                 backbone_options={"model_name": "test_vit"}).eval()
    image = scenes(1, seed=4)[0]["image"]
    cam = explain(task, {"image": image}, method="gradcam").attributions[0].scores
    assert cam.shape == (160, 160) and cam.max() > 0


def test_detection_gets_one_map_per_box() -> None:
    torch.manual_seed(0)
    task = polygraft.create_task("detection", backbone="timm", label_names=["circle", "square"], score_thresh=0.0,
                                 backbone_options={"model_name": "test_resnet", "features": "maps",
                                                   "image_size": 64}).eval()
    image = scenes(1, seed=5)[0]["image"]
    result = explain(task, {"image": image}, method="gradcam", settings=Settings(min_box_score=0.0))
    assert len(result.attributions) == min(10, len(result.prediction["boxes"]))
    assert all(len(a.info["input_box"]) == 4 and a.scores.shape == (64, 64) for a in result.attributions)
    locations = {(a.info["location"], a.label) for a in result.attributions}
    assert len(locations) == len(result.attributions)  # each box is followed to the location that predicted it
    few = Settings(min_box_score=0.0, max_boxes=2, steps=8, max_steps=8)
    integrated = explain(task, {"image": image}, method="integrated-gradients", settings=few).attributions
    assert [a.info["location"] for a in integrated] == [a.info["location"] for a in result.attributions[:2]]
    assert not np.allclose(integrated[0].scores, integrated[1].scores)
    assert explain(task, {"image": image}, method="gradcam").attributions == []  # random boxes score < 0.3


def test_shape_classification_keeps_one_box_per_scene(tmp_path: Path) -> None:
    data = polygraft.load_dataset("shape-classification", split="val", size=3, image_size=40,
                                  cache_dir=str(tmp_path))
    assert len(data) == 3 and data.label_names == list(SHAPES)
    for example in data:
        x0, y0, x1, y1 = (int(v) for v in example["box"])
        assert example["label"] in SHAPES and 0 <= x0 < x1 <= 40 and 0 <= y0 < y1 <= 40
        pixels = np.asarray(example["image"])[y0:y1, x0:x1]
        assert (pixels >= 130).all(axis=-1).any()  # the shape's colour is inside its box

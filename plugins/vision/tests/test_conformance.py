"""polygraft's conformance kit on every component of polygraft-vision (tiny random timm models, tiny files)."""

from __future__ import annotations

from pathlib import Path

from polygraft.testing import check_plugin


def test_every_vision_component_conforms(tmp_path: Path, write_image) -> None:
    from polygraft_vision.shapes import generate_shapes
    from polygraft_vision.shapes_masks import generate_shape_masks

    for label, colour in (("cat", "red"), ("dog", "blue")):
        for index in range(2):
            write_image(tmp_path / "folder" / label / f"{index}.png", colour)
    (tmp_path / "images.csv").write_text("path,label\nfolder/cat/0.png,cat\nfolder/dog/0.png,dog\n"
                                         "folder/cat/1.png,cat\n")
    annotations = generate_shapes(tmp_path / "coco", num_images=4, image_size=64, max_shapes=2, seed=1)
    masks = generate_shape_masks(tmp_path / "masks", num_images=3, image_size=48, max_shapes=2, seed=1)
    report = check_plugin("polygraft_vision.plugin", options={
        "timm": [{"model_name": "test_resnet", "image_size": 32},
                 {"model_name": "test_efficientnet", "image_size": 64, "features": "maps"}],
        "image-folder": {"path": str(tmp_path / "folder")},
        "image-csv": {"path": str(tmp_path / "images.csv")},
        "coco": {"annotations": str(annotations)},
        "synthetic-shapes": {"size": 4, "image_size": 64, "cache_dir": str(tmp_path / "cache")},
        "shape-classification": {"size": 4, "image_size": 64, "cache_dir": str(tmp_path / "cache")},
        "segmentation-folder": {"path": str(masks)},
        "coco-segmentation": {"annotations": str(masks / "annotations.json")},
        "synthetic-shapes-segmentation": {"size": 3, "image_size": 48, "cache_dir": str(tmp_path / "cache")},
        "simclr": {"projection_dim": 8},
    })
    checked = {result.component.split(" {")[0] for result in report.results}
    assert {"backbone 'timm'", "dataset 'mnist-5k'", "dataset 'digits'", "dataset 'shape-classification'",
            "weights 'mobilenetv2-imagenet'",
            "dataset 'segmentation-folder'", "dataset 'coco-segmentation'"} <= checked
    assert any(c.startswith("objective 'simclr' on backbone 'timm'") for c in checked)

"""Segmentation data: mask-PNG folders (VOC and plain layouts), COCO polygons / RLE through pycocotools, generated
scenes with masks; bad masks (size, values, RGB, missing) named by file or skipped and counted; digit filters."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

import polygraft
from polygraft.errors import ConfigError, DataError
from polygraft_vision.masks import read_mask, save_mask


def write_pair(root: Path, stem: str, mask: np.ndarray, *, image_size: tuple[int, int] | None = None,
               image_dir: str = "images", mask_dir: str = "masks", suffix: str = ".png") -> None:
    (root / image_dir).mkdir(parents=True, exist_ok=True)
    (root / mask_dir).mkdir(parents=True, exist_ok=True)
    width, height = image_size or (mask.shape[1], mask.shape[0])
    Image.new("RGB", (width, height), (20, 30, 40)).save(root / image_dir / f"{stem}{suffix}")
    save_mask(mask, root / mask_dir / f"{stem}.png")


def small_mask(value: int = 1) -> np.ndarray:
    mask = np.zeros((6, 8), dtype=np.uint8)
    mask[1:4, 2:6] = value
    mask[0, 0] = 255
    return mask


def test_voc_layout_with_split_lists_and_default_classes(catalog, tmp_path: Path) -> None:
    for stem, value in (("2007_000001", 15), ("2007_000002", 8)):
        write_pair(tmp_path, stem, small_mask(value), image_dir="JPEGImages", mask_dir="SegmentationClass",
                   suffix=".jpg")
    lists = tmp_path / "ImageSets" / "Segmentation"
    lists.mkdir(parents=True)
    (lists / "train.txt").write_text("2007_000001\n")
    (lists / "val.txt").write_text("2007_000002\n")
    train = polygraft.load_dataset("segmentation-folder", catalog=catalog, path=str(tmp_path), split="train")
    assert len(train) == 1 and train.label_names[15] == "person" and len(train.label_names) == 21
    example = train[0]
    assert example["mask"].shape == (6, 8) and int(example["mask"][2, 3]) == 15 and int(example["mask"][0, 0]) == 255
    assert example["_origin"].endswith("train.txt:1")
    assert int(polygraft.load_dataset("segmentation-folder", catalog=catalog, path=str(tmp_path),
                                      split="val")[0]["mask"][2, 3]) == 8


def test_plain_layout_with_classes_file_split_folders_and_extra_masks(catalog, tmp_path: Path) -> None:
    write_pair(tmp_path / "train", "a", small_mask())
    write_pair(tmp_path / "train", "b", small_mask(2))
    save_mask(small_mask(), tmp_path / "train" / "masks" / "orphan.png")
    (tmp_path / "classes.txt").write_text("background\nroad\ncar\n")
    source = polygraft.load_dataset("segmentation-folder", catalog=catalog, path=str(tmp_path), split="train",
                                    classes=["background", "road", "car"])
    assert len(source) == 2 and source.label_names == ["background", "road", "car"]
    assert source.skip_report()["reasons"]["mask without an image"]["count"] == 1
    with pytest.raises(ConfigError, match="name the classes"):
        polygraft.load_dataset("segmentation-folder", catalog=catalog, path=str(tmp_path / "train"))


@pytest.mark.parametrize(("problem", "message", "reason"), [
    ("size", r"b.png: the mask is 8x6 but its image b.png is 10x6", "mask size differs from its image"),
    ("value", r"b.png: mask value\(s\) \[9\] are not classes", "mask value that is not a class"),
    ("rgb", r"b.png: the mask is a RGB image", "mask is not an index image"),
    ("missing", r"image b.png has no mask", "image without a mask"),
])
def test_bad_masks_are_errors_naming_the_file_or_counted_skips(catalog, tmp_path: Path, problem: str, message: str,
                                                               reason: str) -> None:
    write_pair(tmp_path, "a", small_mask())
    write_pair(tmp_path, "b", small_mask(9 if problem == "value" else 1),
               image_size=(10, 6) if problem == "size" else None)
    if problem == "rgb":
        Image.new("RGB", (8, 6)).save(tmp_path / "masks" / "b.png")
    if problem == "missing":
        (tmp_path / "masks" / "b.png").unlink()
    options = {"path": str(tmp_path), "classes": ["background", "thing"]}
    with pytest.raises(DataError, match=message):
        polygraft.load_dataset("segmentation-folder", catalog=catalog, **options)
    skipping = polygraft.load_dataset("segmentation-folder", catalog=catalog, skip_invalid=True, **options)
    assert len(skipping) == 1 and skipping.skip_report()["reasons"][reason]["count"] == 1


def test_header_validation_defers_the_value_check_to_reading(catalog, tmp_path: Path) -> None:
    write_pair(tmp_path, "a", small_mask(5))
    source = polygraft.load_dataset("segmentation-folder", catalog=catalog, path=str(tmp_path),
                                    classes=["background", "thing"], validate="header")
    with pytest.raises(DataError, match=r"a.png: mask value\(s\) \[5\]"):
        source[0]


def coco_file(tmp_path: Path, annotations: list[dict], *, size: tuple[int, int] = (10, 8)) -> Path:
    Image.new("RGB", size).save(tmp_path / "a.png")
    path = tmp_path / "ann.json"
    path.write_text(json.dumps({"images": [{"id": 1, "file_name": "a.png", "width": size[0], "height": size[1]}],
                                "categories": [{"id": 3, "name": "cat"}, {"id": 9, "name": "dog"}],
                                "annotations": annotations}))
    return path


def ann(index: int, category: int, segmentation: object, **extra: object) -> dict:
    return {"id": index, "image_id": 1, "category_id": category, "segmentation": segmentation, "bbox": [0, 0, 1, 1],
            "area": 1, "iscrowd": 0, **extra}


def test_coco_polygons_and_rle_become_one_semantic_mask(catalog, tmp_path: Path) -> None:
    dog = np.zeros((8, 10), dtype=np.uint8)
    dog[5:8, 6:10] = 1
    compressed = mask_utils.encode(np.asfortranarray(dog))
    crowd = np.zeros((8, 10), dtype=np.uint8)
    crowd[0:2, 8:10] = 1
    runs, current = [0], 0  # uncompressed RLE: run lengths in column-major order, starting with zeros
    for value in crowd.ravel(order="F"):
        if value != current:
            runs.append(0)
            current = value
        runs[-1] += 1
    path = coco_file(tmp_path, [
        ann(1, 3, [[0, 0, 6, 0, 6, 4, 0, 4]]),  # a big cat polygon
        ann(2, 9, {"size": [8, 10], "counts": compressed["counts"].decode()}),
        ann(3, 9, {"size": [8, 10], "counts": runs}, iscrowd=1),
        ann(4, 9, [[1, 1, 3, 1, 3, 3, 1, 3]]),  # a small dog on the cat: painted last, so visible
    ])
    source = polygraft.load_dataset("coco-segmentation", catalog=catalog, annotations=str(path))
    assert source.label_names == ["background", "cat", "dog"]
    mask = source[0]["mask"]
    cat = mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects([[0, 0, 6, 0, 6, 4, 0, 4]], 8, 10))).astype(bool)
    small = mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects([[1, 1, 3, 1, 3, 3, 1, 3]], 8, 10))).astype(bool)
    expected = np.zeros((8, 10), dtype=np.int64)
    expected[cat], expected[dog.astype(bool)], expected[crowd.astype(bool)], expected[small] = 1, 2, 255, 2
    assert (mask == expected).all()


@pytest.mark.parametrize(("segmentation", "message", "reason"), [
    ({"size": [10, 8], "counts": "PPYo0"}, r"annotation id 1 \(image a.png\): the RLE mask is \[10, 8\]",
     "mask size differs from its image"),
    ([[0, 0, 4, 0]], "annotation id 1 .*at least three points", "malformed polygon"),
    (None, "annotation id 1 .*no 'segmentation'", "annotation without a mask"),
])
def test_coco_bad_segmentations_name_the_annotation(catalog, tmp_path: Path, segmentation: object, message: str,
                                                    reason: str) -> None:
    path = coco_file(tmp_path, [ann(1, 3, segmentation), ann(2, 9, [[0, 0, 4, 0, 4, 4]])])
    with pytest.raises(DataError, match=message):
        polygraft.load_dataset("coco-segmentation", catalog=catalog, annotations=str(path))
    source = polygraft.load_dataset("coco-segmentation", catalog=catalog, annotations=str(path), skip_invalid=True)
    assert source.skip_report()["reasons"][reason]["count"] == 1 and int(source[0]["mask"].max()) == 2


def test_generated_scenes_have_exact_masks_in_both_layouts(catalog, tmp_path: Path) -> None:
    options = {"split": "val", "size": 6, "image_size": 64, "seed": 1, "cache_dir": str(tmp_path)}
    folder = polygraft.load_dataset("synthetic-shapes-segmentation", catalog=catalog, **options)
    coco = polygraft.load_dataset("synthetic-shapes-segmentation", catalog=catalog, layout="coco", **options)
    assert folder.label_names == coco.label_names == ["background", "circle", "square", "triangle"]
    written = json.loads(next(tmp_path.glob("val-*/annotations.json")).read_text())
    for index in range(len(folder)):
        mask = folder[index]["mask"]
        assert (mask == coco[index]["mask"]).all()
        pixels = np.asarray(folder[index]["image"]).astype(int)
        assert ((pixels >= 130).all(-1) == (mask > 0)).all()  # shapes are exactly the bright pixels
        for annotation in (a for a in written["annotations"] if a["image_id"] == index + 1):
            x, y, w, h = annotation["bbox"]
            own = mask_utils.decode({"size": [64, 64], "counts": annotation["segmentation"]["counts"].encode()})
            ys, xs = np.nonzero(own)
            assert (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) == (x, y, x + w, y + h)
            assert (mask[own.astype(bool)] == annotation["category_id"]).all()


def test_palette_masks_read_as_indices_not_colours(tmp_path: Path) -> None:
    mask = np.array([[0, 1], [15, 255]], dtype=np.uint8)
    save_mask(mask, tmp_path / "m.png")
    assert Image.open(tmp_path / "m.png").mode == "P"
    assert (read_mask(tmp_path / "m.png") == mask).all()


def test_digit_sets_keep_only_the_listed_classes(catalog) -> None:
    train = polygraft.load_dataset("mnist-5k", catalog=catalog, split="train", val_size=1000, classes=[0, 1, 2])
    val = polygraft.load_dataset("mnist-5k", catalog=catalog, split="val", val_size=1000, classes=[7, 9])
    assert train.label_names == ["0", "1", "2"] and val.label_names == ["7", "9"]
    assert {train[i]["label"] for i in range(len(train))} == {"0", "1", "2"} and 800 < len(train) < 1000
    assert {val[i]["label"] for i in range(len(val))} == {"7", "9"}
    with pytest.raises(ConfigError, match="distinct digits 0-9"):
        polygraft.load_dataset("digits", catalog=catalog, classes=[1, 1])

"""Datasets: folders, CSVs, COCO JSON (with every kind of bad entry), packaged digits, generated shapes."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

import polygraft
from polygraft.errors import DataError


def make_folder(root, write_image):
    write_image(root / "cat" / "a.png", "red")
    write_image(root / "cat" / "b.jpg", "red")
    write_image(root / "dog" / "c.png", "blue", mode="L")
    (root / "dog" / "README.txt").write_text("not an image")
    return root


def test_image_folder(catalog, tmp_path, write_image):
    source = polygraft.load_dataset("image-folder", catalog=catalog, path=str(make_folder(tmp_path, write_image)))
    assert source.label_names == ["cat", "dog"] and len(source) == 3
    assert source.skipped["file without an image extension"] == 1  # counted, never silent
    assert source[2]["label"] == "dog" and source[2]["image"].mode == "RGB"


def test_image_folder_bad_files(catalog, tmp_path, write_image, png_claiming):
    root = make_folder(tmp_path, write_image)
    (root / "cat" / "broken.png").write_bytes(b"garbage" * 10)
    png_claiming(root / "dog" / "bomb.png", 50_000, 50_000)
    with pytest.raises(DataError, match=r"broken\.png"):
        polygraft.load_dataset("image-folder", catalog=catalog, path=str(root))
    source = polygraft.load_dataset("image-folder", catalog=catalog, path=str(root), skip_invalid=True)
    assert len(source) == 3 and source.skipped["unreadable image"] == 2
    report = source.skip_report()
    unreadable = report["reasons"]["unreadable image"]
    assert unreadable["count"] == 2 and any("bomb.png" in place for place in unreadable["first"])


def test_image_folder_truncated_skip(catalog, tmp_path, write_image):
    root = make_folder(tmp_path, write_image)
    cut = root / "cat" / "cut.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(cut)
    cut.write_bytes(cut.read_bytes()[:400])
    source = polygraft.load_dataset("image-folder", catalog=catalog, path=str(root), skip_invalid=True)
    assert source.skipped["unreadable image"] == 1 and len(source) == 3
    lazy = polygraft.load_dataset("image-folder", catalog=catalog, path=str(root))  # header check only
    with pytest.raises(DataError, match=r"cut\.png"):
        [lazy[i] for i in range(len(lazy))]


def test_image_csv(catalog, tmp_path, write_image):
    write_image(tmp_path / "img" / "x.png")
    write_image(tmp_path / "img" / "y.png", "green")
    (tmp_path / "data.csv").write_text("path,label\nimg/x.png,red\nimg/y.png,green\n")
    source = polygraft.load_dataset("image-csv", catalog=catalog, path=str(tmp_path / "data.csv"))
    assert source.label_names == ["green", "red"] and source[1]["image"].getpixel((0, 0))[1] > 100
    (tmp_path / "bad.csv").write_text("path,label\nimg/x.png,red\nimg/missing.png,red\n")
    with pytest.raises(DataError, match=r"missing.png.*bad.csv:3"):
        polygraft.load_dataset("image-csv", catalog=catalog, path=str(tmp_path / "bad.csv"))
    (tmp_path / "nolabel.csv").write_text("file,y\n")
    with pytest.raises(DataError, match=r"nolabel.csv:1: column 'path' is missing"):
        polygraft.load_dataset("image-csv", catalog=catalog, path=str(tmp_path / "nolabel.csv"))


def coco_file(shapes_dir, tmp_path, mutate):
    data = json.loads((shapes_dir / "annotations.json").read_text())
    mutate(data)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize(("mutate", "message", "reason"), [
    (lambda d: d["images"][0].update(file_name="images/nowhere.png"), r"nowhere.png.*image id 1.*does not exist",
     "missing image file"),
    (lambda d: d["annotations"][0].update(category_id=99), r"annotation id 1 .*unknown category id 99",
     "unknown category id"),
    (lambda d: d["annotations"][0].update(bbox=[50, 50, 40, 40]), r"annotation id 1 .*outside",
     "box outside the image"),
    (lambda d: d["annotations"][0].update(bbox=[5, 5, 0, 4]), r"annotation id 1 .*zero or negative",
     "box of zero or negative size"),
    (lambda d: d["annotations"][0].update(bbox=[5, 5, -3, 4]), r"annotation id 1 .*zero or negative",
     "box of zero or negative size"),
])
def test_coco_bad_entries(catalog, shapes_dir, tmp_path, mutate, message, reason):
    path = coco_file(shapes_dir, tmp_path, mutate)
    with pytest.raises(DataError, match=message):
        polygraft.load_dataset("coco", catalog=catalog, annotations=str(path), images=str(shapes_dir))
    source = polygraft.load_dataset("coco", catalog=catalog, annotations=str(path), images=str(shapes_dir),
                                    skip_invalid=True)
    assert source.skipped[reason] == 1


def test_coco_reads_boxes(catalog, shapes_dir):
    source = polygraft.load_dataset("coco", catalog=catalog, annotations=str(shapes_dir / "annotations.json"))
    assert len(source) == 24 and source.label_names == ["circle", "square", "triangle"]
    example = source[0]
    assert len(example["boxes"]) == len(example["labels"]) >= 1
    pixels = np.asarray(example["image"])
    for x0, y0, x1, y1 in example["boxes"]:  # boxes are exact: the shape touches every edge of its box
        inside = (pixels[int(y0):int(y1), int(x0):int(x1)] >= 130).all(-1)
        assert inside.any(0).all() and inside.any(1).all()


def test_coco_invalid_json(catalog, tmp_path):
    (tmp_path / "a.json").write_text('{"images": [\n  oops]}')
    with pytest.raises(DataError, match=r"a.json:2: invalid JSON"):
        polygraft.load_dataset("coco", catalog=catalog, annotations=str(tmp_path / "a.json"))


def test_mnist_5k_split(catalog):
    train = polygraft.load_dataset("mnist-5k", catalog=catalog, split="train", seed=0)
    test = polygraft.load_dataset("mnist-5k", catalog=catalog, split="test", seed=0)
    assert (len(train), len(test)) == (4000, 1000)
    assert train[0]["image"].size == (28, 28)
    assert len({test[i]["label"] for i in range(50)}) > 5  # shuffled, although the file is sorted by label
    other = polygraft.load_dataset("mnist-5k", catalog=catalog, split="test", seed=1)
    assert [test[i]["label"] for i in range(20)] != [other[i]["label"] for i in range(20)]


def test_digits(catalog):
    train = polygraft.load_dataset("digits", catalog=catalog, split="train")
    test = polygraft.load_dataset("digits", catalog=catalog, split="test")
    assert len(train) + len(test) == 1797 and np.asarray(train[0]["image"]).max() > 200


def test_synthetic_shapes_cached(catalog, tmp_path):
    first = polygraft.load_dataset("synthetic-shapes", catalog=catalog, split="val", size=4, image_size=64,
                                   cache_dir=str(tmp_path))
    again = polygraft.load_dataset("synthetic-shapes", catalog=catalog, split="val", size=4, image_size=64,
                                   cache_dir=str(tmp_path))
    assert first.annotations_path == again.annotations_path and len(first) == 4
    train = polygraft.load_dataset("synthetic-shapes", catalog=catalog, split="train", size=4, image_size=64,
                                   cache_dir=str(tmp_path))
    assert train.annotations_path != first.annotations_path


def test_shapes_helper_writes_coco(catalog, tmp_path):
    from polygraft_vision.shapes import main

    assert main([str(tmp_path / "set"), "--num-images", "3", "--image-size", "48"]) == 0
    source = polygraft.load_dataset("coco", catalog=catalog, annotations=str(tmp_path / "set" / "annotations.json"))
    assert len(source) == 3 and source[0]["image"].size == (48, 48)

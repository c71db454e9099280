"""COCO JSON structure checks: every bad entry is a DataError naming the file and the image / annotation /
category, or (``skip_invalid``) a counted skip; structural problems always raise."""

from __future__ import annotations

import codecs
import json

import pytest

import polygraft
from polygraft.errors import DataError


def coco_dict() -> dict:
    """Two 32x32 images, two categories, three boxes (annotation ids 1..3)."""
    return {
        "images": [{"id": 1, "file_name": "a.png", "width": 32, "height": 32},
                   {"id": 2, "file_name": "b.png", "width": 32, "height": 32}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [2, 2, 10, 10]},
                        {"id": 2, "image_id": 1, "category_id": 2, "bbox": [14, 14, 8, 8]},
                        {"id": 3, "image_id": 2, "category_id": 1, "bbox": [4, 4, 20, 12]}],
        "categories": [{"id": 1, "name": "circle"}, {"id": 2, "name": "square"}],
    }


@pytest.fixture
def write_coco(tmp_path, write_image):
    write_image(tmp_path / "a.png", size=(32, 32))
    write_image(tmp_path / "b.png", size=(32, 32))

    def write(data: dict | bytes, name: str = "instances.json"):
        path = tmp_path / name
        if isinstance(data, bytes):
            path.write_bytes(data)
        else:
            path.write_text(json.dumps(data))  # NaN / Infinity are written as JSON's NaN / Infinity literals
        return path

    return write


def load(catalog, path, **options):
    return polygraft.load_dataset("coco", catalog=catalog, annotations=str(path), **options)


def boxes_of(source) -> int:
    return sum(len(source[i]["boxes"]) for i in range(len(source)))


def test_the_valid_file_loads(catalog, write_coco):
    source = load(catalog, write_coco(coco_dict()))
    assert len(source) == 2 and boxes_of(source) == 3 and source.label_names == ["circle", "square"]
    assert not source.skipped


def test_annotation_without_image_id_names_it_or_is_skipped(catalog, write_coco):
    data = coco_dict()
    del data["annotations"][1]["image_id"]
    path = write_coco(data)
    with pytest.raises(DataError, match=r"instances\.json: annotation id 2 has no 'image_id'"):
        load(catalog, path)
    source = load(catalog, path, skip_invalid=True)
    assert source.skipped["annotation without image_id"] == 1 and boxes_of(source) == 2
    assert "annotation id 2" in source.skipped_at["annotation without image_id"][0]
    data["annotations"][1] = {"bbox": [1, 1, 4, 4], "category_id": 1}  # neither id nor image_id: named by position
    with pytest.raises(DataError, match=r"annotation #1 \(no id\) has no 'image_id'"):
        load(catalog, write_coco(data))
    data["annotations"][1]["image_id"] = "one"
    with pytest.raises(DataError, match=r"annotation #1 \(no id\) has image_id 'one'"):
        load(catalog, write_coco(data))


@pytest.mark.parametrize(("category", "message"), [
    ({"name": "circle"}, r"category #0 \('circle'\) has no 'id'"),
    ({"id": "round", "name": "circle"}, r"category #0 \('circle'\) has id 'round', not an integer"),
    ({"id": 2, "name": "circle"}, r"category id 2 is used twice"),
    ("circle", r"category #0 must be an object"),
])
def test_bad_category_always_raises(catalog, write_coco, category, message):
    data = coco_dict()
    data["categories"][0] = category
    path = write_coco(data)
    for skip in (False, True):  # the label set would be a guess: never skipped
        with pytest.raises(DataError, match=r"instances\.json: " + message):
            load(catalog, path, skip_invalid=skip)


@pytest.mark.parametrize("key", ["images", "annotations", "categories"])
@pytest.mark.parametrize("value", [{"1": {}}, "a.png", None])
def test_top_level_entries_must_be_lists(catalog, write_coco, key, value):
    data = coco_dict()
    data[key] = value
    path = write_coco(data)
    for skip in (False, True):
        with pytest.raises(DataError, match=rf"instances\.json: '{key}' must be a list of objects, got "
                                            rf"{type(value).__name__}"):
            load(catalog, path, skip_invalid=skip)


def test_annotations_may_be_absent(catalog, write_coco):
    data = coco_dict()
    del data["annotations"]
    source = load(catalog, write_coco(data))
    assert len(source) == 2 and boxes_of(source) == 0


def test_non_utf8_bytes_name_the_file_and_line(catalog, write_coco):
    raw = json.dumps(coco_dict(), indent=1).encode().replace(b'"square"', b'"carr\xe9"')  # a Latin-1 byte
    line = raw[: raw.index(b"\xe9")].count(b"\n") + 1
    path = write_coco(raw)
    for skip in (False, True):
        with pytest.raises(DataError, match=rf"instances\.json:{line}: not valid UTF-8 .*re-save the file as UTF-8"):
            load(catalog, path, skip_invalid=skip)
    bom = write_coco(codecs.BOM_UTF8 + json.dumps(coco_dict()).encode(), name="bom.json")
    assert boxes_of(load(catalog, bom)) == 3  # a UTF-8 byte-order mark is fine


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf"), "nan", 1e999])
def test_nan_or_infinite_box_is_refused_or_skipped(catalog, write_coco, bad):
    data = coco_dict()
    data["annotations"][2]["bbox"] = [4, 4, bad, 12]
    path = write_coco(data)
    with pytest.raises(DataError, match=r"instances\.json: annotation id 3 \(image b\.png\): box .* NaN or "
                                        r"infinite"):
        load(catalog, path)
    source = load(catalog, path, skip_invalid=True)
    assert source.skipped["non-finite box coordinate"] == 1 and boxes_of(source) == 2
    assert "annotation id 3" in source.skipped_at["non-finite box coordinate"][0]


def test_nan_literal_in_the_raw_file_is_caught(catalog, write_coco):
    raw = json.dumps(coco_dict()).replace("[2, 2, 10, 10]", "[NaN, 2, 10, 10]").encode()
    with pytest.raises(DataError, match=r"annotation id 1 .*NaN or infinite"):
        load(catalog, write_coco(raw))


def test_image_without_id_or_with_duplicate_id(catalog, write_coco):
    data = coco_dict()
    del data["images"][1]["id"]
    path = write_coco(data)
    with pytest.raises(DataError, match=r"instances\.json: image #1 \('b\.png'\) has no 'id'"):
        load(catalog, path)
    source = load(catalog, path, skip_invalid=True)
    assert len(source) == 1 and source.skipped["image without id"] == 1
    assert source.skipped["annotation for unknown image"] == 1  # b.png's box, whose image is gone
    data = coco_dict()
    data["images"][1]["id"] = 1
    for skip in (False, True):
        with pytest.raises(DataError, match=r"image id 1 is used twice \('a\.png' and 'b\.png'\)"):
            load(catalog, write_coco(data), skip_invalid=skip)


def test_bad_declared_image_size(catalog, write_coco):
    data = coco_dict()
    data["images"][0]["width"] = float("nan")
    path = write_coco(data)
    with pytest.raises(DataError, match=r"instances\.json: image id 1 \(a\.png\): width and height must be "
                                        r"whole numbers"):
        load(catalog, path, validate="none")
    source = load(catalog, path, skip_invalid=True)
    assert len(source) == 1 and source.skipped["bad image size"] == 1


def test_ids_written_as_decimal_strings_still_work(catalog, write_coco):
    data = coco_dict()
    data["annotations"][0].update(image_id="1", category_id="1")
    source = load(catalog, write_coco(data))
    assert boxes_of(source) == 3 and source[0]["labels"][0] == "circle"

"""multimodal-manifest (CSV, TSV, JSONL; paths relative to the file; bad rows named by file and line or counted),
the fields check before training, and the generated sets: deterministic, split-disjoint, each modality alone at
chance (shape-captions), composed from registered datasets (av-digits, review-numbers)."""

from __future__ import annotations

import collections
import hashlib
import json
import random
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile
from PIL import Image

import polygraft
from polygraft.errors import ConfigError, DataError
from polygraft.fusion.generated import shape_captions
from polygraft.fusion.generated.review_numbers import label_for


def media(folder: Path) -> None:
    (folder / "img").mkdir()
    Image.new("RGB", (6, 6), (200, 20, 20)).save(folder / "img" / "red.png")
    soundfile.write(str(folder / "beep.wav"), np.sin(np.arange(1600) / 3.0).astype(np.float32) * 0.3, 16000)
    (folder / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunkjunkjunk")


def manifest(**options):
    return polygraft.load_dataset("multimodal-manifest", **options)


COLUMNS = {"caption": "text", "photo": "image", "clip": "audio", "price": "number", "genre": "category"}


def test_csv_tsv_and_jsonl_give_the_same_examples(tmp_path: Path) -> None:
    media(tmp_path)
    header = "caption,photo,clip,price,genre,label\n"
    (tmp_path / "a.csv").write_text(header + "a red square,img/red.png,beep.wav,3.5,drama,yes\n,,beep.wav,,,no\n")
    (tmp_path / "a.tsv").write_text(header.replace(",", "\t") + "a red square\timg/red.png\tbeep.wav\t3.5\tdrama\tyes\n"
                                    "\t\tbeep.wav\t\t\tno\n")
    (tmp_path / "a.jsonl").write_text(json.dumps({"caption": "a red square", "photo": "img/red.png", "clip": "beep.wav",
                                                  "price": 3.5, "genre": "drama", "label": "yes"}) + "\n"
                                      + json.dumps({"clip": "beep.wav", "price": None, "label": "no"}) + "\n")
    sources = [manifest(path=str(tmp_path / f"a.{ext}"), columns=COLUMNS) for ext in ("csv", "tsv", "jsonl")]
    for source in sources:
        first, second = source[0], source[1]
        assert first["photo"].size == (6, 6) and first["clip"]["sample_rate"] == 16000 and first["price"] == 3.5
        assert [second[c] for c in ("caption", "photo", "price", "genre")] == [None] * 4
        assert source.label_names == ["no", "yes"] and source.storage == "files" and source.fields == COLUMNS
    assert sources[0].fingerprint() == manifest(path=str(tmp_path / "a.csv"), columns=COLUMNS).fingerprint()


@pytest.mark.parametrize(("row", "message", "reason"), [
    ("a cat,img/red.png,beep.wav,cheap,x,yes", "column 'price': 'cheap' is not a number", "column 'price': not a number"),
    ("a cat,a photo of a cat,beep.wav,1,x,yes", "column 'photo': 'a photo of a cat' is not a readable image file",
     "column 'photo': unreadable image file"),
    ("a cat,img/red.png,broken.wav,1,x,yes", "column 'clip': 'broken.wav' is not a readable audio file",
     "column 'clip': unreadable audio file"),
    (",,,,,yes", "every field (caption, photo, clip, price, genre) is empty", "every field is empty"),
    ("a cat,img/red.png,beep.wav,1,x,", "label column 'label' is empty", "empty label"),
])
def test_a_bad_row_names_file_and_line_or_is_skipped_and_counted(tmp_path: Path, row: str, message: str,
                                                                 reason: str) -> None:
    media(tmp_path)
    table = tmp_path / "data.csv"
    table.write_text("caption,photo,clip,price,genre,label\na dog,img/red.png,beep.wav,2,y,no\n" + row + "\n")
    with pytest.raises(DataError, match=f"data.csv:3: {re.escape(message)}"):
        manifest(path=str(table), columns=COLUMNS)
    source = manifest(path=str(table), columns=COLUMNS, skip_invalid=True)
    assert len(source) == 1
    assert source.skip_report()["reasons"] == {reason: {"count": 1, "first": [f"{table}:3"]}}


def test_manifest_option_mistakes_name_the_closest(tmp_path: Path) -> None:
    (tmp_path / "d.csv").write_text("caption,label\nhi,yes\n")
    with pytest.raises(ConfigError, match="has type 'txt'; did you mean 'text'"):
        manifest(path=str(tmp_path / "d.csv"), columns={"caption": "txt"})
    with pytest.raises(DataError, match="column 'captoin' is not in the header; did you mean 'caption'"):
        manifest(path=str(tmp_path / "d.csv"), columns={"captoin": "text"})


def test_unread_and_lacking_fields_stop_before_training(tmp_path: Path) -> None:
    (tmp_path / "d.csv").write_text("a,b,label\n" + "".join(f"[{i}.0, 1.0],[2.0, {i}.0],{i % 2}\n" for i in range(8)))
    data = manifest(path=str(tmp_path / "d.csv"), columns={"a": "text", "b": "text"})
    toy = {"backbone": "toy", "backbone_options": {"in_features": 2}}

    def fit(branches: dict) -> None:
        task = polygraft.create_task("classification", backbone="fusion", label_names=["0", "1"],
                                     backbone_options={"branches": branches})
        polygraft.Trainer({"max_steps": 1, "batch_size": 4, "progress": False}).fit(task, train_data=data)

    with pytest.raises(ConfigError, match=r"field 'b' \(text\) of the training data is read by no branch"):
        fit({"a": toy})
    with pytest.raises(ConfigError, match="reads field 'c', which the training data does not have"):
        fit({"a": toy, "c": toy})


def test_shape_captions_is_deterministic_split_disjoint_and_each_modality_alone_is_at_chance(tmp_path: Path) -> None:
    sizes = {"train_size": 40, "val_size": 20, "test_size": 20, "image_size": 16}
    one = {s: polygraft.load_dataset("shape-captions", split=s, cache_dir=str(tmp_path / "1"), **sizes)
           for s in ("train", "val", "test")}
    other = polygraft.load_dataset("shape-captions", split="test", cache_dir=str(tmp_path / "2"), **sizes)
    digest = [hashlib.sha1(Path(row["image"]).read_bytes()).hexdigest() for row in other.rows]
    assert digest == [hashlib.sha1(Path(row["image"]).read_bytes()).hexdigest() for row in one["test"].rows]
    images = [{hashlib.sha1(one[s][i]["image"].tobytes()).hexdigest() for i in range(len(one[s]))} for s in one]
    assert sum(len(s) for s in images) == 80 and not (images[0] & images[1] or images[0] & images[2])
    only = polygraft.load_dataset("shape-captions", split="val", cache_dir=str(tmp_path / "1"), fields=["caption"],
                                  **sizes)
    assert only.fields == {"caption": "text"} and "image" not in only[0]
    # by construction: what the image shows, and what the caption says, are independent of the label
    rng = random.Random(0)
    seen: dict[str, collections.Counter] = {"image": collections.Counter(), "caption": collections.Counter()}
    for _ in range(40000):
        shape, colour, said_colour, said_shape, label = shape_captions._example(rng)
        seen["image"][(shape, colour, label)] += 1
        seen["caption"][(said_shape, said_colour, label)] += 1
    for counts in seen.values():
        for shape in shape_captions.SHAPES:
            for colour in shape_captions.COLOURS:
                match, mismatch = counts[(shape, colour, "match")], counts[(shape, colour, "mismatch")]
                assert abs(match / (match + mismatch) - 0.5) < 0.03


def test_av_digits_pairs_images_and_clips_of_the_same_digit(tmp_path: Path) -> None:
    tiny = dict(image_dataset="digits", train_size=30, val_size=10, test_size=20, cache_dir=str(tmp_path),
                audio_options={"voices": ["en-us", "en+f3", "en-029"], "speeds": [160], "pitches": [50],
                               "val_voices": 1, "test_voices": 1, "cache_dir": str(tmp_path / "spoken")})
    train = polygraft.load_dataset("av-digits", split="train", **tiny)
    test = polygraft.load_dataset("av-digits", split="test", **tiny)
    assert (len(train), len(test), train.label_names) == (30, 20, [str(d) for d in range(10)])
    first = train[0]
    assert first["image"].size == (8, 8) and first["audio"]["sample_rate"] == 16000
    assert 0.1 < float(np.abs(first["audio"]["audio"]).max()) <= 0.91
    assert polygraft.load_dataset("av-digits", split="test", fields=["audio"], **tiny).fields == {"audio": "audio"}


def test_review_numbers_labels_follow_their_rule(tmp_path: Path) -> None:
    both = polygraft.load_dataset("review-numbers", split="train", train_size=60, val_size=10, test_size=10,
                                  cache_dir=str(tmp_path), fields=None)
    text = polygraft.load_dataset("review-numbers", split="train", train_size=60, val_size=10, test_size=10,
                                  cache_dir=str(tmp_path), depends_on="text", fields=["review_with_numbers"])
    import csv

    for source, rule in ((both, "both"), (text, "text")):
        for row in csv.DictReader(Path(source.path).read_text().splitlines()):
            a, b = (float(row["popularity"]) - 50) / 15, (float(row["price"]) - 10) / 3
            assert row["label"] == label_for(row["sentiment"] == "fresh", a, b, rule)
    assert text[0]["review_with_numbers"].startswith("popularity ")
    assert both.fields == {"review": "text", "popularity": "number", "price": "number"}


def test_generated_sets_give_regression_and_multilabel_targets(tmp_path: Path) -> None:
    sizes = {"train_size": 30, "val_size": 10, "test_size": 10}
    scores = polygraft.load_dataset("review-numbers", split="train", cache_dir=str(tmp_path), label="score", **sizes)
    recommend = polygraft.load_dataset("review-numbers", split="train", cache_dir=str(tmp_path), **sizes)
    assert scores.target_names == ["score"] and len(scores) == len(recommend) == 30
    for i in range(len(scores)):  # the label is the score's sign
        assert (float(scores[i]["label"]) > 0) == (recommend[i]["label"] == "yes")
    attributes = polygraft.load_dataset("shape-captions", split="val", cache_dir=str(tmp_path), label="attributes",
                                        image_size=16, **sizes)
    matches = polygraft.load_dataset("shape-captions", split="val", cache_dir=str(tmp_path), image_size=16, **sizes)
    assert Path(attributes.path) == Path(matches.path)  # the same files, another label
    for i in range(len(attributes)):
        shape, colour = attributes[i]["label"]
        assert shape in shape_captions.SHAPES and colour in shape_captions.COLOURS
    with pytest.raises(ConfigError, match="did you mean 'attributes'"):
        polygraft.load_dataset("shape-captions", split="val", cache_dir=str(tmp_path), label="atributes", **sizes)
    with pytest.raises(ConfigError, match="did you mean 'score'"):
        polygraft.load_dataset("review-numbers", split="val", cache_dir=str(tmp_path), label="scores", **sizes)

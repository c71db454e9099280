"""The CTranslate2 model.bin reader: what it reads back, and every kind of broken file it refuses."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from polygraft.errors import WeightsError
from polygraft_speech.ctranslate2_format import read_model_bin, write_model_bin


def _string(text: str) -> bytes:
    raw = text.encode() + b"\0"
    return struct.pack("<H", len(raw)) + raw


def _variable(name: str, dims: list[int], type_id: int, payload: bytes, nbytes: int | None = None) -> bytes:
    """One variable written by hand (independent of write_model_bin), with a byte count we may falsify."""
    return (_string(name) + struct.pack("<B", len(dims)) + struct.pack(f"<{len(dims)}I", *dims)
            + struct.pack("<BI", type_id, len(payload) if nbytes is None else nbytes) + payload)


def _file(variables: list[bytes], *, version: int = 6, count: int | None = None,
          aliases: list[tuple[str, str]] = ()) -> bytes:
    head = struct.pack("<I", version) + _string("TestSpec") + struct.pack("<II", 2, len(variables) if count is None
                                                                          else count)
    tail = struct.pack("<I", len(aliases)) + b"".join(_string(a) + _string(t) for a, t in aliases)
    return head + b"".join(variables) + tail


GOOD = [_variable("enc/w", [2, 3], 4, np.arange(6, dtype="<f2").tobytes()),
        _variable("enc/heads", [], 2, struct.pack("<h", 6)),
        _variable("enc/b", [3], 0, np.array([1.5, -2.0, 0.25], dtype="<f4").tobytes())]


def test_reads_names_shapes_dtypes_and_aliases(tmp_path):
    path = tmp_path / "model.bin"
    path.write_bytes(_file(GOOD, aliases=[("dec/proj", "enc/w")]))
    model = read_model_bin(tmp_path)  # a folder holding model.bin works too
    assert model.spec == "TestSpec" and model.revision == 2 and model.version == 6
    assert model.dtypes == {"enc/w": "float16", "enc/heads": "int16", "enc/b": "float32"}
    assert model.variables["enc/w"].dtype == np.float16
    np.testing.assert_array_equal(model.variables["enc/w"], np.arange(6).reshape(2, 3))
    assert model.variables["enc/heads"].shape == () and int(model.variables["enc/heads"]) == 6
    np.testing.assert_array_equal(model.variables["enc/b"], [1.5, -2.0, 0.25])
    assert model.aliases == {"dec/proj": "enc/w"}
    assert model.describe()["dtypes"] == {"float16": 1, "int16": 1, "float32": 1}


def test_bfloat16_is_widened_exactly(tmp_path):
    values = np.array([1.5, -3.0, 0.0078125], dtype=np.float32)
    payload = (values.view(np.uint32) >> 16).astype("<u2").tobytes()
    (tmp_path / "model.bin").write_bytes(_file([_variable("x", [3], 5, payload)]))
    model = read_model_bin(tmp_path / "model.bin")
    assert model.dtypes["x"] == "bfloat16"
    np.testing.assert_array_equal(model.variables["x"], values)


def test_writer_round_trip(tmp_path):
    arrays = {"a": np.random.default_rng(0).standard_normal((4, 5)).astype(np.float16),
              "b": np.array(3, dtype=np.int8), "c": np.arange(7, dtype=np.int32)}
    write_model_bin(tmp_path / "m.bin", "RoundSpec", 7, arrays, aliases={"d": "a"})
    model = read_model_bin(tmp_path / "m.bin")
    assert (model.spec, model.revision, model.aliases) == ("RoundSpec", 7, {"d": "a"})
    for name, value in arrays.items():
        assert model.variables[name].dtype == value.dtype
        np.testing.assert_array_equal(model.variables[name], value)


@pytest.mark.parametrize("cut", [3, 10, 30, 60, -5, -1])
def test_refuses_a_truncated_file(tmp_path, cut):
    data = _file(GOOD, aliases=[("dec/proj", "enc/w")])
    path = tmp_path / "model.bin"
    path.write_bytes(data[:cut])
    with pytest.raises(WeightsError, match="truncated") as info:
        read_model_bin(path)
    assert str(path) in str(info.value)


def test_truncated_data_names_the_tensor(tmp_path):
    data = _file(GOOD)
    end_of_first = len(_file([])) - 4 + len(GOOD[0])  # header + first variable, minus the alias count
    path = tmp_path / "model.bin"
    path.write_bytes(data[: end_of_first - 2])
    with pytest.raises(WeightsError, match=r"truncated.*'enc/w'"):
        read_model_bin(path)


@pytest.mark.parametrize("content, message", [
    (b"\x89PNG\r\n\x1a\n" + bytes(64), "binary version"),
    (_file(GOOD, version=5), "binary version 6 \\(found 5\\)"),
    (_file(GOOD, count=0xFFFFFFFF), "absurd variable count"),
    (b"", "truncated"),
])
def test_refuses_a_foreign_file(tmp_path, content, message):
    path = tmp_path / "model.bin"
    path.write_bytes(content)
    with pytest.raises(WeightsError, match=message) as info:
        read_model_bin(path)
    assert str(path) in str(info.value)


def test_refuses_an_unknown_dtype(tmp_path):
    path = tmp_path / "model.bin"
    path.write_bytes(_file([GOOD[0], _variable("enc/odd", [2], 9, b"\0\0")]))
    with pytest.raises(WeightsError, match=r"unknown dtype id 9.*'enc/odd'") as info:
        read_model_bin(path)
    assert str(path) in str(info.value)


def test_refuses_a_byte_count_that_disagrees_with_the_dims(tmp_path):
    payload = np.zeros(6, dtype="<f2").tobytes()
    path = tmp_path / "model.bin"
    path.write_bytes(_file([_variable("enc/w", [2, 3], 4, payload[:10], nbytes=10)]))
    with pytest.raises(WeightsError, match=r"byte count 10 disagrees with dims \[2, 3\].*'enc/w'") as info:
        read_model_bin(path)
    assert str(path) in str(info.value)


def test_refuses_trailing_bytes_bad_aliases_and_duplicates(tmp_path):
    path = tmp_path / "model.bin"
    path.write_bytes(_file(GOOD) + b"junk")
    with pytest.raises(WeightsError, match="unexpected bytes"):
        read_model_bin(path)
    path.write_bytes(_file(GOOD, aliases=[("dec/proj", "nowhere")]))
    with pytest.raises(WeightsError, match=r"not a stored variable.*'dec/proj'"):
        read_model_bin(path)
    path.write_bytes(_file([GOOD[0], GOOD[0]]))
    with pytest.raises(WeightsError, match=r"stored twice.*'enc/w'"):
        read_model_bin(path)


def test_missing_file(tmp_path):
    with pytest.raises(WeightsError, match="does not exist"):
        read_model_bin(tmp_path / "nothing.bin")

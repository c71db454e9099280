"""A small, strict reader (and writer) of CTranslate2's binary model format (``model.bin``), without CTranslate2.

Layout (binary version 6, little-endian, as written by ``ctranslate2.specs.ModelSpec._serialize``)::

    uint32 version | string spec name | uint32 revision | uint32 variable count
    per variable: string name | uint8 rank | rank x uint32 dims | uint8 dtype id | uint32 byte count | bytes
    uint32 alias count | per alias: string alias | string target name

A string is a uint16 length (counting a trailing NUL), the UTF-8 bytes, then the NUL. Dtype ids follow
CTranslate2's ``DataType`` enum: 0 float32, 1 int8, 2 int16, 3 int32, 4 float16, 5 bfloat16.

The file is read once and parsed with :mod:`struct` and :mod:`numpy` (no pickle). Every inconsistency (a truncated
file, a foreign file, an unknown dtype, a byte count that disagrees with the dims) raises
:class:`~polygraft.errors.WeightsError` naming the file and, where there is one, the tensor; a partial model is
never returned. Arrays keep their stored dtype, except bfloat16, which numpy lacks: it is widened to float32
exactly (``dtypes`` still reports ``"bfloat16"``).

Example:
    >>> import tempfile, pathlib, numpy as np
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "model.bin"
    >>> write_model_bin(path, "DemoSpec", 1, {"w": np.ones((2, 3), np.float16)}, aliases={"v": "w"})
    >>> model = read_model_bin(path)
    >>> model.spec, model.variables["w"].shape, model.dtypes["w"], model.aliases
    ('DemoSpec', (2, 3), 'float16', {'v': 'w'})
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from polygraft.errors import WeightsError

BINARY_VERSION = 6
DTYPES: tuple[str, ...] = ("float32", "int8", "int16", "int32", "float16", "bfloat16")
"""Dtype names by CTranslate2 type id."""
_ITEMSIZE = {"float32": 4, "int8": 1, "int16": 2, "int32": 4, "float16": 2, "bfloat16": 2}
MAX_VARIABLES = 1_000_000
MAX_RANK = 8


@dataclass(frozen=True)
class CTranslate2Model:
    """The content of one ``model.bin``: tensors by name, their stored dtypes, aliases (tied tensors)."""

    path: Path
    spec: str
    revision: int
    variables: dict[str, np.ndarray]
    dtypes: dict[str, str]
    aliases: dict[str, str] = field(default_factory=dict)
    version: int = BINARY_VERSION

    def describe(self) -> dict[str, object]:
        """A JSON-friendly summary: spec, revision, counts of tensors per stored dtype, aliases."""
        counts: dict[str, int] = {}
        for dtype in self.dtypes.values():
            counts[dtype] = counts.get(dtype, 0) + 1
        return {"path": str(self.path), "spec": self.spec, "revision": self.revision, "version": self.version,
                "variables": len(self.variables), "dtypes": counts, "aliases": dict(self.aliases)}


class _Cursor:
    """Reads little-endian fields from a bytes buffer; running past the end is a WeightsError naming the file."""

    def __init__(self, data: bytearray, path: Path) -> None:
        self.data, self.path, self.offset = data, path, 0
        self.tensor: str | None = None

    def fail(self, message: str) -> WeightsError:
        where = f" (tensor {self.tensor!r})" if self.tensor else ""
        return WeightsError(f"{self.path}: {message}{where}; this is not a complete CTranslate2 model.bin — "
                            "reinstall the package that ships it or re-convert the model")

    def take(self, size: int, what: str) -> memoryview:
        end = self.offset + size
        if size < 0 or end > len(self.data):
            raise self.fail(f"file is truncated: {what} needs {size} bytes at offset {self.offset}, "
                            f"only {len(self.data) - self.offset} left")
        view = memoryview(self.data)[self.offset:end]
        self.offset = end
        return view

    def unpack(self, fmt: str, what: str) -> int:
        return int(struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt), what))[0])

    def string(self, what: str) -> str:
        length = self.unpack("H", f"length of {what}")
        raw = bytes(self.take(length, what))
        if length == 0 or raw[-1] != 0:
            raise self.fail(f"{what} is not a NUL-terminated string")
        try:
            return raw[:-1].decode("utf-8")
        except UnicodeDecodeError as exc:
            raise self.fail(f"{what} is not UTF-8") from exc


def _read_array(cursor: _Cursor, name: str, dims: list[int], dtype: str, nbytes: int) -> np.ndarray:
    count = int(np.prod(dims, dtype=np.int64)) if dims else 1
    if nbytes != count * _ITEMSIZE[dtype]:
        raise cursor.fail(f"byte count {nbytes} disagrees with dims {dims} x {dtype} "
                          f"({count * _ITEMSIZE[dtype]} bytes)")
    raw = cursor.take(nbytes, f"data of {name!r}")
    if dtype == "bfloat16":  # numpy has no bfloat16: widen exactly (the 16 high bits of a float32)
        bits = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
        return bits.view(np.float32).reshape(dims)
    return np.frombuffer(raw, dtype=np.dtype(dtype).newbyteorder("<")).reshape(dims)


def read_model_bin(path: str | Path) -> CTranslate2Model:
    """Read a CTranslate2 ``model.bin`` (or the directory holding one) into named numpy arrays."""
    path = Path(path)
    if path.is_dir():
        path = path / "model.bin"
    try:
        data = bytearray(path.read_bytes())  # one read; the arrays are views of this buffer
    except FileNotFoundError as exc:
        raise WeightsError(f"{path}: model file does not exist") from exc
    except OSError as exc:
        raise WeightsError(f"{path}: cannot read the model file ({exc})") from exc
    cursor = _Cursor(data, path)
    version = cursor.unpack("I", "binary version")
    if version != BINARY_VERSION:
        raise WeightsError(f"{path}: not a CTranslate2 model.bin of binary version {BINARY_VERSION} (found "
                           f"{version}); re-convert it with ctranslate2>=3.0 or check that this is the right file")
    spec = cursor.string("spec name")
    revision = cursor.unpack("I", "spec revision")
    count = cursor.unpack("I", "variable count")
    if count > MAX_VARIABLES:
        raise cursor.fail(f"absurd variable count {count} (more than {MAX_VARIABLES})")
    variables: dict[str, np.ndarray] = {}
    dtypes: dict[str, str] = {}
    for index in range(count):
        cursor.tensor = None
        name = cursor.string(f"name of variable {index}")
        cursor.tensor = name
        if name in variables:
            raise cursor.fail("variable stored twice")
        rank = cursor.unpack("B", "rank")
        if rank > MAX_RANK:
            raise cursor.fail(f"absurd rank {rank}")
        dims = [cursor.unpack("I", "dims") for _ in range(rank)]
        type_id = cursor.unpack("B", "dtype id")
        if type_id >= len(DTYPES):
            raise cursor.fail(f"unknown dtype id {type_id} (known: {dict(enumerate(DTYPES))})")
        nbytes = cursor.unpack("I", "byte count")
        variables[name] = _read_array(cursor, name, dims, DTYPES[type_id], nbytes)
        dtypes[name] = DTYPES[type_id]
    cursor.tensor = None
    aliases: dict[str, str] = {}
    alias_count = cursor.unpack("I", "alias count")
    if alias_count > MAX_VARIABLES:
        raise cursor.fail(f"absurd alias count {alias_count}")
    for index in range(alias_count):
        alias = cursor.string(f"alias {index}")
        cursor.tensor = alias
        target = cursor.string("alias target")
        if target not in variables or alias in variables or alias in aliases:
            raise cursor.fail(f"alias points to {target!r}, which is not a stored variable (or shadows one)")
        aliases[alias] = target
        cursor.tensor = None
    if cursor.offset != len(data):
        raise cursor.fail(f"{len(data) - cursor.offset} unexpected bytes after the aliases")
    return CTranslate2Model(path=path, spec=spec, revision=revision, variables=variables, dtypes=dtypes,
                            aliases=aliases, version=version)


def write_model_bin(path: str | Path, spec: str, revision: int, variables: Mapping[str, np.ndarray], *,
                    aliases: Mapping[str, str] | None = None) -> None:
    """Write ``variables`` (float32/int8/int16/int32/float16 arrays) in the layout above (used by tests and tools)."""

    def string(text: str) -> bytes:
        raw = text.encode("utf-8") + b"\0"
        return struct.pack("<H", len(raw)) + raw

    parts = [struct.pack("<I", BINARY_VERSION), string(spec), struct.pack("<II", revision, len(variables))]
    for name, value in variables.items():
        array = np.ascontiguousarray(value)
        dtype = array.dtype.name
        if dtype not in DTYPES or dtype == "bfloat16":
            raise WeightsError(f"{path}: cannot write {name!r} of dtype {dtype}; use one of {DTYPES[:5]}")
        parts += [string(name), struct.pack("<B", array.ndim), struct.pack(f"<{array.ndim}I", *array.shape),
                  struct.pack("<BI", DTYPES.index(dtype), array.nbytes), array.astype(array.dtype.newbyteorder("<"),
                                                                                      copy=False).tobytes()]
    parts.append(struct.pack("<I", len(aliases or {})))
    for alias, target in (aliases or {}).items():
        parts += [string(alias), string(target)]
    Path(path).write_bytes(b"".join(parts))

"""The on-disk cache of prepared examples: safetensors shards, checked against their key, written atomically.

A cache folder lives under ``polygraft.assets.cache_dir("prepared")`` and is named after the sha256 of its *key*:
the data source's fingerprint (files, sizes, modification times, options), the pipeline's fingerprint (its settings
and its preprocessor's), which examples it holds, the cache format and the versions of polygraft, torch and the
plugins involved. ``manifest.json`` repeats the whole key and the sha256 of every shard (computed from the bytes
while they are written); a folder is used only when that key equals the one expected, the format is this one and
every shard's size and sha256 match (one read of each shard when the cache is opened, a few hundred MB/s: see
benchmarks/README.md). Anything else, a damaged header, changed bytes of the same size, an unreadable manifest, is
a miss: the folder is rebuilt and the run log says why (:attr:`DiskCache.problem`).

Each shard is one safetensors file: every tensor of its examples, plus the examples' structure as JSON bytes
(``__json__``, with ``__offsets__`` marking where each example's text starts), so one example is read without
reading its neighbours. Nothing is ever unpickled: examples may hold tensors, NumPy arrays, strings, numbers,
booleans, ``None``, lists, tuples and dicts with string keys; anything else is refused when writing
(:class:`Unstorable`), and the trainer then keeps such examples in memory only.

A cache is written into a temporary sibling folder and renamed into place, so a reader never sees half a cache
and two processes writing the same key cannot mix their files.

Example:
    >>> import tempfile, torch
    >>> from pathlib import Path
    >>> from polygraft.inputs.cache.disk import DiskCache
    >>> cache = DiskCache(Path(tempfile.mkdtemp()), {"source": "s1", "pipeline": "p1"}, size=2)
    >>> writer = cache.writer()
    >>> writer.add({"x": torch.ones(2), "label": 1})
    >>> writer.add({"x": torch.zeros(2), "label": 0})
    >>> store = writer.commit()
    >>> store[1]["label"], cache.open()[0]["x"].tolist()
    (0, [1.0, 1.0])
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from polygraft.fingerprint import canonical_json, digest

FORMAT = 2
"""Version of the folder layout and encoding; part of every key."""

SHARD_EXAMPLES = 4096
SHARD_BYTES = 256 * 2**20
MANIFEST = "manifest.json"


class Unstorable(TypeError):
    """A prepared example holds a value the cache cannot write without pickling it."""


class _Miss(Exception):
    """A cache folder exists but cannot be used; the message says why."""


def _sha256(file: Path) -> str:
    hasher = hashlib.sha256()
    with open(file, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            hasher.update(block)
    return hasher.hexdigest()


class DiskCache:
    """One cache folder: ``open()`` the verified cache for ``key`` (or ``None``), or ``writer()`` a new one."""

    def __init__(self, root: Path, key: Mapping[str, Any], *, size: int, name: str = "data") -> None:
        self.key = {"format": FORMAT, **key, "size": size}
        self.size = size
        safe = "".join(c if c.isalnum() or c in "-_" else "-" for c in name)[:40] or "data"
        self.path = Path(root) / f"{safe}-{digest(self.key)[:24]}"
        self.problem = ""  # why the last open() found no usable cache in an existing folder ("" when there was none)

    def open(self) -> DiskStore | None:
        """The verified cache for this key, or ``None`` when it is missing, damaged, or made for another key."""
        self.problem = ""
        if not (self.path / MANIFEST).exists():
            return None
        try:
            return self._verified()
        except _Miss as miss:
            self.problem = str(miss)
            return None

    def _verified(self) -> DiskStore:
        try:
            manifest = json.loads((self.path / MANIFEST).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise _Miss(f"{MANIFEST} is unreadable ({type(exc).__name__})") from None
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            raise _Miss(f"it was written in another format ({manifest.get('format') if isinstance(manifest, dict) else '?'})")
        if canonical_json(manifest.get("key")) != canonical_json(json.loads(canonical_json(self.key))):
            raise _Miss("it was made for other data or settings")
        shards = manifest.get("shards")
        try:
            if not isinstance(shards, list) or sum(int(s["count"]) for s in shards) != self.size:
                raise _Miss("its manifest does not add up to the examples expected")
            for shard in shards:
                name = str(shard["file"])
                file = self.path / name
                if "/" in name or not file.is_file() or file.stat().st_size != int(shard["bytes"]):
                    raise _Miss(f"{name} is missing or has another size than when it was written")
                if _sha256(file) != shard["sha256"]:
                    raise _Miss(f"{name} does not match its checksum (it changed since it was written)")
        except (KeyError, TypeError, ValueError, OSError) as exc:
            raise _Miss(f"its manifest or a shard is damaged ({type(exc).__name__}: {exc})") from None
        lengths = manifest.get("lengths")
        if lengths is not None and (not isinstance(lengths, list) or len(lengths) != self.size):
            raise _Miss("its lengths do not match its examples")
        return DiskStore(self.path, shards, lengths=lengths)

    def writer(self) -> DiskWriter:
        return DiskWriter(self)


class DiskWriter:
    """Appends examples in order into shards of a temporary folder; ``commit`` renames it into place."""

    def __init__(self, cache: DiskCache) -> None:
        self.cache = cache
        self.tmp = cache.path.with_name(f".{cache.path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
        self.tmp.mkdir(parents=True)
        self.shards: list[dict[str, Any]] = []
        self._reset()

    def _reset(self) -> None:
        self.tensors: dict[str, torch.Tensor] = {}
        self.texts: list[bytes] = []
        self.tensor_bytes = 0

    def add(self, item: Any) -> None:
        """Append the next example (raises :class:`Unstorable` for values that would need pickling)."""
        position = len(self.texts)
        tensors: dict[str, torch.Tensor] = {}
        text = canonical_json(_encode(item, tensors, f"{position}."))
        for name, tensor in tensors.items():
            self.tensors[name] = tensor
            self.tensor_bytes += tensor.numel() * tensor.element_size()
        self.texts.append(text.encode())
        if len(self.texts) >= SHARD_EXAMPLES or self.tensor_bytes >= SHARD_BYTES:
            self._flush()

    def _flush(self) -> None:
        if not self.texts:
            return
        from safetensors.torch import save

        offsets = np.cumsum([0] + [len(t) for t in self.texts], dtype=np.int64)
        blob = np.frombuffer(b"".join(self.texts), dtype=np.uint8) if offsets[-1] else np.zeros(0, np.uint8)
        tensors = {**self.tensors, "__json__": torch.from_numpy(blob.copy()),
                   "__offsets__": torch.from_numpy(offsets)}
        name = f"{len(self.shards):05d}.safetensors"
        data = save(tensors, metadata={"polygraft_cache_format": str(FORMAT)})  # the bytes: hashed as written
        with open(self.tmp / name, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        self.shards.append({"file": name, "count": len(self.texts), "bytes": len(data),
                            "sha256": hashlib.sha256(data).hexdigest()})
        self._reset()

    def commit(self, *, lengths: list[int] | None = None) -> DiskStore:
        """Write the manifest and move the folder into place (or use an identical cache another process wrote).
        ``lengths``: each example's compute size, kept beside the shards for length-grouped batching."""
        self._flush()
        manifest = {"format": FORMAT, "key": self.cache.key, "shards": self.shards, "lengths": lengths}
        (self.tmp / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True, default=str))
        _fsync(self.tmp / MANIFEST)
        existing = self.cache.open()
        if existing is not None:  # another rank or run finished the same cache first
            self.abort()
            return existing
        if self.cache.path.exists():  # a broken or foreign folder under this name: replace it
            shutil.rmtree(self.cache.path, ignore_errors=True)
        try:
            os.rename(self.tmp, self.cache.path)
        except OSError:
            existing = self.cache.open()
            self.abort()
            if existing is None:
                raise
            return existing
        store = self.cache.open()
        if store is None:  # pragma: no cover - only when the folder is changed under us
            raise OSError(f"the input cache just written to {self.cache.path} does not verify")
        return store

    def abort(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)


class DiskStore:
    """Read-only, random-access examples of a verified cache folder (opens its shards lazily, per process)."""

    def __init__(self, path: Path, shards: list[dict[str, Any]], *, lengths: list[int] | None = None) -> None:
        self.path = path
        self.lengths = lengths
        self.files = [str(path / s["file"]) for s in shards]
        self.starts = np.cumsum([0] + [int(s["count"]) for s in shards])
        self.nbytes = sum(int(s["bytes"]) for s in shards)
        self._handles: dict[int, tuple[Any, np.ndarray]] = {}

    def __len__(self) -> int:
        return int(self.starts[-1])

    def __getitem__(self, position: int) -> Any:
        if not 0 <= position < len(self):
            raise IndexError(position)
        shard = int(np.searchsorted(self.starts, position, side="right")) - 1
        handle, offsets = self._open(shard)
        local = position - int(self.starts[shard])
        text = handle.get_slice("__json__")[int(offsets[local]) : int(offsets[local + 1])]
        return _decode(json.loads(text.numpy().tobytes()), handle)

    def _open(self, shard: int) -> tuple[Any, np.ndarray]:
        if shard not in self._handles:
            from safetensors import safe_open

            handle = safe_open(self.files[shard], framework="pt")
            self._handles[shard] = (handle, handle.get_tensor("__offsets__").numpy())
        return self._handles[shard]

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_handles": {}}  # each DataLoader worker opens its own


# ---------------------------------------------------------------------------------------------- encoding
def unstorable(item: Any) -> str | None:
    """Why ``item`` cannot be written without pickling (the first offending value), or ``None`` when it can."""
    try:
        _encode(item, {}, "")
    except Unstorable as exc:
        return str(exc)
    return None


def _encode(value: Any, tensors: dict[str, torch.Tensor], prefix: str) -> Any:
    """JSON for ``value``; tensors (and arrays) go to ``tensors`` under fresh names and are referenced."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return {"f": value.hex()}  # exact, and NaN/inf survive
    if isinstance(value, list):
        return [_encode(v, tensors, prefix) for v in value]
    if isinstance(value, tuple):
        return {"t": [_encode(v, tensors, prefix) for v in value]}
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise Unstorable("a dict with non-string keys")
        return {"d": {k: _encode(v, tensors, prefix) for k, v in value.items()}}
    if isinstance(value, torch.Tensor | np.ndarray):
        is_array = isinstance(value, np.ndarray)
        if is_array and (value.dtype == object or not value.dtype.isnative):
            raise Unstorable(f"a NumPy array of dtype {value.dtype}")
        tensor = torch.from_numpy(np.ascontiguousarray(value)) if is_array else value.detach().cpu()
        name = f"{prefix}{len(tensors)}"
        tensors[name] = tensor.contiguous().clone()  # owns its memory: safetensors refuses shared storage
        return {"a" if is_array else "x": name}
    raise Unstorable(f"a value of type {type(value).__module__}.{type(value).__qualname__}")


def _decode(value: Any, handle: Any) -> Any:
    if isinstance(value, list):
        return [_decode(v, handle) for v in value]
    if not isinstance(value, dict):
        return value
    (tag, inner), = value.items()
    if tag == "d":
        return {k: _decode(v, handle) for k, v in inner.items()}
    if tag == "t":
        return tuple(_decode(v, handle) for v in inner)
    if tag == "f":
        return float.fromhex(inner)
    if tag == "x":
        return handle.get_tensor(inner)
    if tag == "a":
        return handle.get_tensor(inner).numpy()
    raise ValueError(f"unknown tag {tag!r} in an input cache")


def _fsync(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())

"""``hf-dataset``: local Parquet / Arrow files or a ``save_to_disk`` folder, read through Hugging Face ``datasets``.

The table stays on disk, memory-mapped (Arrow): examples are read one by one, so a data set larger than memory
trains. ``path`` is a folder written by ``Dataset.save_to_disk`` (a ``DatasetDict`` folder takes ``split``:
its ``train``, ``validation`` or ``test``...), one ``.parquet`` / ``.arrow`` file, a folder of them, or a glob
(``data/*.parquet``). Parquet files are converted once into ``datasets``' Arrow cache (``cache_dir``, default
``datasets``' own). Columns are mapped like ``text-csv``'s: ``text_column``, ``text_pair_column``, ``label_column``
(``null`` for unlabelled text). A ``ClassLabel`` column gives its names; other labels are read as text. Nothing is
downloaded.

Every problem names the file: a path or glob matching nothing, a missing mapped column (with the columns there
are), empty text or label at a row (``file:row``).

Example:
    >>> import tempfile, pathlib
    >>> import pyarrow as pa, pyarrow.parquet as pq
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "reviews.parquet"
    >>> pq.write_table(pa.table({"text": ["great film", "dull"], "label": ["pos", "neg"]}), path)
    >>> source = HFDatasetSource(path, cache_dir=str(path.parent / "cache"))
    >>> source[0]["text"], source.label_names
    ('great film', ['neg', 'pos'])
"""

from __future__ import annotations

import glob
from pathlib import Path
from typing import Any

from polygraft.errors import ConfigError, DataError
from polygraft.interfaces.datasource import DataSource

SUFFIXES = (".parquet", ".arrow")


def _files(path: str) -> list[Path]:
    """The Parquet / Arrow files ``path`` names (a file, a folder of them, or a glob)."""
    found = [Path(p) for p in sorted(glob.glob(path))] if any(c in path for c in "*?[") else [Path(path)]
    files: list[Path] = []
    for item in found:
        if item.is_dir():
            files.extend(sorted(p for p in item.iterdir() if p.suffix in SUFFIXES))
        elif item.is_file():
            files.append(item)
    if not files:
        raise DataError(f"no {' or '.join(SUFFIXES)} files (and no save_to_disk folder) match this path",
                        path=Path(path))
    kinds = {f.suffix for f in files}
    if len(kinds) > 1 or not kinds <= set(SUFFIXES):
        raise DataError(f"expected only .parquet or only .arrow files, found {sorted(kinds)}", path=Path(path))
    return files


def _open(path: str, split: str | None, cache_dir: str | None) -> Any:
    try:
        import datasets
    except ImportError as exc:
        raise ConfigError(f"dataset hf-dataset needs the datasets package: pip install -r requirements/scale.txt "
                          f"({exc})") from None

    folder = Path(path)
    if folder.is_dir() and ((folder / "dataset_dict.json").is_file() or (folder / "state.json").is_file()):
        loaded = datasets.load_from_disk(str(folder))
        if isinstance(loaded, datasets.DatasetDict):
            if split not in loaded:
                raise DataError(f"this DatasetDict has splits {sorted(loaded)}; pass split: one of them",
                                path=folder)
            return loaded[split]
        return loaded
    files = _files(path)
    if files[0].suffix == ".arrow":
        return datasets.concatenate_datasets([datasets.Dataset.from_file(str(f)) for f in files])
    return datasets.Dataset.from_parquet([str(f) for f in files], cache_dir=cache_dir)


class HFDatasetSource(DataSource):
    """Examples ``{"text", ["text_pair"], ["label"], "_origin"}`` from a memory-mapped ``datasets.Dataset``."""

    def __init__(self, path: str | Path, *, text_column: str = "text", text_pair_column: str | None = None,
                 label_column: str | None = "label", label_names: list[str] | None = None,
                 split: str | None = None, cache_dir: str | None = None) -> None:
        super().__init__()
        self.path = str(path)
        self.name = Path(self.path).name
        self.dataset = _open(self.path, split, cache_dir)
        self.columns = {"text": text_column, "text_pair": text_pair_column, "label": label_column}
        available = list(self.dataset.column_names)
        missing = [c for c in self.columns.values() if c is not None and c not in available]
        if missing:
            raise DataError(f"missing column(s) {missing}; the data set has {available}. Set text_column / "
                            "text_pair_column / label_column (label_column: null for unlabelled text)",
                            path=Path(self.path))
        if len(self.dataset) == 0:
            raise DataError("the data set has no rows", path=Path(self.path))
        self.class_names: list[str] | None = None
        if label_column is not None:
            feature = self.dataset.features[label_column]
            self.class_names = list(feature.names) if hasattr(feature, "names") else None
            found = self.class_names or sorted(str(v) for v in self.dataset.unique(label_column) if v is not None)
            self.label_names = list(label_names) if label_names else found
            unknown = sorted(set(found) - set(self.label_names))
            if unknown:
                raise DataError(f"labels {unknown} are not in label_names {self.label_names}", path=Path(self.path))

    def __len__(self) -> int:
        return len(self.dataset)

    def _example(self, index: int) -> dict[str, Any]:
        row = self.dataset[index]
        where = f"{self.path}:{index}"
        example: dict[str, Any] = {"_origin": where}
        for key, column in self.columns.items():
            if column is None:
                continue
            value = row[column]
            if value is None or (isinstance(value, str) and not value.strip()):
                raise DataError(f"empty {'label' if key == 'label' else 'text'} in column {column!r} at row {index}",
                                path=Path(self.path))
            if key == "label":
                value = self.class_names[int(value)] if self.class_names else str(value)
            example[key] = value
        return example

    def fingerprint(self) -> str | None:
        """The files' names, sizes and modification times, and the column mapping."""
        files = [Path(f["filename"]) for f in self.dataset.cache_files] or [Path(self.path)]
        stats = [(str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in files if f.exists()]
        return f"hf-dataset:{stats}:{sorted((k, str(v)) for k, v in self.columns.items())}"

"""``multimodal-manifest``: a CSV, TSV or JSONL file whose columns are the fields of a fused model.

``columns`` maps each column to its type: ``text``, ``image`` (a path), ``audio`` (a path), ``number`` or
``category``; paths are relative to the manifest's folder (or ``root``). ``label`` names the label column (or a
list of columns: several regression targets); ``label_separator`` splits label cells into lists (multi-label; an
empty cell is then "no label"). Columns not listed are ignored (an ``id``, a ``split`` column: ``split_column``
keeps the rows of the requested split). A column set to ``null`` in ``columns`` is left out (a recipe override
``data.common.columns.caption=null`` trains without that field).

An empty cell (or a JSON ``null``, or an absent key) is a missing field: the fused model uses its learned
"missing" embedding for that branch. Everything else is checked when the file is opened, each problem a
:class:`~polygraft.errors.DataError` naming the file and line (or, with ``skip_invalid: true``, skipped and
counted in the run's skip report): a number that is not a number, an image or audio path that names no readable
file (headers are read; ``validate: full`` decodes every file), a missing label, a row whose every field is
empty. Images and clips are decoded when an example is read (in DataLoader workers).

Example:
    >>> import tempfile, pathlib, polygraft
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (folder / "data.csv").write_text("caption,price,label\\na red square,3.5,yes\\n,2.0,no\\n")
    >>> data = polygraft.load_dataset("multimodal-manifest", path=str(folder / "data.csv"),
    ...                               columns={"caption": "text", "price": "number"})
    >>> data[1]["caption"], data[1]["price"], data.label_names, data.fields
    (None, 2.0, ['no', 'yes'], {'caption': 'text', 'price': 'number'})
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from polygraft.errors import ConfigError, DataError
from polygraft.fusion.media import MAX_PIXELS, check_audio, check_image, open_image, read_audio
from polygraft.interfaces import DataSource, files_fingerprint
from polygraft.interfaces.datasource import SPLITS
from polygraft.options import closest

FIELD_TYPES = ("text", "image", "audio", "number", "category")
FORMATS = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl"}
VALIDATE = ("header", "full", "none")


class _Skip(Exception):
    """A bad row: raised as a DataError, or counted when skipping."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason, self.detail = reason, detail


class MultimodalManifest(DataSource):
    """The rows of a manifest (see the module docstring); media decode when an example is read."""

    def __init__(self, path: str | Path, *, columns: Mapping[str, str | None], label: str | list[str] | None = "label",
                 label_separator: str | None = None, format: str = "auto", root: str | None = None,
                 skip_invalid: bool = False, validate: str = "header", split: str | None = None,
                 split_column: str | None = None, max_pixels: int = MAX_PIXELS, name: str = "multimodal-manifest") -> None:
        super().__init__()
        self.path, self.name = Path(path), name
        self.base = Path(root) if root else self.path.parent
        self.fields = _check_columns(columns)
        self.label_columns = [label] if isinstance(label, str) else list(label or [])
        self.label_separator, self.skip_invalid, self.max_pixels = label_separator, skip_invalid, max_pixels
        if validate not in VALIDATE:
            raise ConfigError(f"{name}: validate must be one of {VALIDATE}, got {validate!r}")
        self.validate = validate
        self.format = _format(self.path, format, name)
        if split_column is not None and split not in (None, "all"):
            from polygraft.interfaces import check_split

            check_split(split, name=name)
        self.split_name, self.split_column = split, split_column
        clash = sorted(set(self.fields) & set(self.label_columns))
        if clash:
            raise ConfigError(f"{name}: {clash[0]!r} is both a field and a label column")
        self.rows: list[dict[str, Any]] = []
        for line, row in self._read():
            if split_column is not None and split not in (None, "all") and str(row.get(split_column, "")).strip() != split:
                continue
            try:
                self.rows.append(self._parse(row, line))
            except _Skip as bad:
                if not skip_invalid:
                    raise DataError(f"{bad.detail} (pass skip_invalid: true to skip and count such rows)",
                                    path=self.path, line=line) from None
                self.skip(bad.reason, f"{self.path}:{line}")
        if not self.rows:
            raise DataError("the manifest holds no usable rows" + (f" for split {split!r}" if split_column else ""),
                            path=self.path)
        media = [c for c, t in self.fields.items() if t in ("image", "audio")]
        self.storage = "files" if media else "memory"
        single = len(self.label_columns) == 1 and label_separator is None
        self.label_names = sorted({str(r["label"]) for r in self.rows}) if single else None
        self.target_names = list(self.label_columns) or None

    # ------------------------------------------------------------------------------------------ reading
    def _read(self) -> Iterator[tuple[int, dict[str, Any]]]:
        try:
            handle = self.path.open(encoding="utf-8", newline="")
        except FileNotFoundError:
            raise DataError("manifest file does not exist", path=self.path) from None
        except OSError as exc:
            raise DataError(f"cannot read the manifest: {exc}", path=self.path) from None
        with handle:
            try:
                if self.format == "jsonl":
                    yield from self._read_jsonl(handle)
                else:
                    yield from self._read_table(handle)
            except UnicodeDecodeError as exc:
                raise DataError(f"the manifest is not UTF-8 text ({exc.reason})", path=self.path) from None

    def _read_table(self, handle: Any) -> Iterator[tuple[int, dict[str, Any]]]:
        reader = csv.DictReader(handle, delimiter="\t" if self.format == "tsv" else ",")
        header = reader.fieldnames or []
        for column in [*self.fields, *self.label_columns, *([self.split_column] if self.split_column else [])]:
            if column not in header:
                near = closest(column, header, n=1)
                hint = f"; did you mean {near[0]!r}?" if near else ""
                raise DataError(f"column {column!r} is not in the header{hint} The header: {header}", path=self.path,
                                line=1)
        for row in reader:
            yield reader.line_num, row

    def _read_jsonl(self, handle: Any) -> Iterator[tuple[int, dict[str, Any]]]:
        seen: set[str] = set()
        for line, text in enumerate(handle, start=1):
            if not text.strip():
                continue
            try:
                row = json.loads(text)
            except json.JSONDecodeError as exc:
                raise DataError(f"not a JSON object ({exc.msg})", path=self.path, line=line) from None
            if not isinstance(row, dict):
                raise DataError(f"each line must be a JSON object, got {type(row).__name__}", path=self.path, line=line)
            seen.update(row)
            yield line, row
        lacking = [c for c in [*self.fields, *self.label_columns] if c not in seen]
        if lacking:
            raise DataError(f"column {lacking[0]!r} is in no line of the file; keys seen: {sorted(seen)}",
                            path=self.path)

    def _parse(self, row: Mapping[str, Any], line: int) -> dict[str, Any]:
        record: dict[str, Any] = {"_origin": f"{self.path}:{line}"}
        for column, kind in self.fields.items():
            record[column] = self._cell(column, kind, row.get(column))
        if all(record[column] is None for column in self.fields):
            raise _Skip("every field is empty", f"every field ({', '.join(self.fields)}) is empty")
        if self.label_columns:
            labels = [self._label(column, row.get(column)) for column in self.label_columns]
            record["label"] = labels[0] if len(labels) == 1 else labels
        return record

    def _cell(self, column: str, kind: str, value: Any) -> Any:
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        if kind == "number":
            try:
                number = float(value)
            except (TypeError, ValueError):
                raise _Skip(f"column {column!r}: not a number", f"column {column!r}: {value!r} is not a number") from None
            return None if math.isnan(number) else number
        if kind in ("text", "category"):
            if isinstance(value, dict | list):
                raise _Skip(f"column {column!r}: not {kind}", f"column {column!r}: expected {kind}, got {value!r}")
            return str(value)
        if not isinstance(value, str):
            raise _Skip(f"column {column!r}: not a path", f"column {column!r}: expected a path to an {kind} file, "
                                                          f"got {value!r}")
        file = Path(value.strip())
        file = file if file.is_absolute() else self.base / file
        if self.validate != "none":
            try:
                if kind == "image":
                    check_image(file, max_pixels=self.max_pixels, full=self.validate == "full")
                else:
                    check_audio(file, full=self.validate == "full")
            except DataError as exc:
                raise _Skip(f"column {column!r}: unreadable {kind} file",
                            f"column {column!r}: {value!r} is not a readable {kind} file: {exc.reason}") from None
        return file

    def _label(self, column: str, value: Any) -> Any:
        empty = value is None or (isinstance(value, str) and not value.strip())
        if self.label_separator is not None:
            if empty:
                return []
            if isinstance(value, list):
                return [str(v) for v in value]
            return [part.strip() for part in str(value).split(self.label_separator) if part.strip()]
        if empty:
            raise _Skip("empty label", f"label column {column!r} is empty")
        return value.strip() if isinstance(value, str) else value

    # ------------------------------------------------------------------------------------------ the source
    def __len__(self) -> int:
        return len(self.rows)

    def _example(self, index: int) -> dict[str, Any]:
        record = dict(self.rows[index])
        for column, kind in self.fields.items():
            value = record[column]
            if value is None or kind not in ("image", "audio"):
                continue
            record[column] = open_image(value, max_pixels=self.max_pixels) if kind == "image" else read_audio(value)
        return record

    def target_values(self, key: str) -> list[tuple[Any, str | None]] | None:
        """Every row's label (without decoding its media), for tasks that learn from their targets."""
        if key != "label" or not self.label_columns:
            return None
        return [(row["label"], row["_origin"]) for row in self.rows]

    def fingerprint(self) -> str | None:
        """The manifest file, every media file it names (size and modification time) and the reading options."""
        settings = [type(self).__name__, self.name, self.fields, self.label_columns, self.label_separator,
                    self.split_name, self.split_column, self.max_pixels]
        media = [(row[c], row["_origin"]) for row in self.rows for c, t in self.fields.items()
                 if t in ("image", "audio") and row[c] is not None]
        return files_fingerprint(settings, [(self.path, None), *media])

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "path": str(self.path), "fields": dict(self.fields),
                "label_columns": self.label_columns}


def _check_columns(columns: Any) -> dict[str, str]:
    if not isinstance(columns, Mapping) or not columns:
        raise ConfigError("multimodal-manifest: columns maps each column to its type (text, image, audio, number, "
                          "category), e.g. columns: {caption: text, photo: image}")
    fields: dict[str, str] = {}
    for column, kind in columns.items():
        if kind is None:
            continue
        if kind not in FIELD_TYPES:
            near = closest(str(kind), FIELD_TYPES, n=1)
            hint = f"; did you mean {near[0]!r}?" if near else ""
            raise ConfigError(f"multimodal-manifest: column {column!r} has type {kind!r}{hint} Types: "
                              f"{', '.join(FIELD_TYPES)}")
        fields[str(column)] = str(kind)
    if not fields:
        raise ConfigError("multimodal-manifest: every column is null; keep at least one field")
    return fields


def _format(path: Path, format: str, name: str) -> str:
    if format == "auto":
        found = FORMATS.get(path.suffix.lower())
        if found is None:
            raise ConfigError(f"{name}: cannot tell the format of {path.name!r} from its extension; pass format: csv, "
                              "tsv or jsonl")
        return found
    if format not in ("csv", "tsv", "jsonl"):
        raise ConfigError(f"{name}: format must be auto, csv, tsv or jsonl, got {format!r}")
    return format


def create_multimodal_manifest(*, path: str, columns: dict[str, str | None], label: str | list[str] | None = "label",
                               label_separator: str | None = None, format: str = "auto", root: str | None = None,
                               skip_invalid: bool = False, validate: str = "header", split: str | None = None,
                               split_column: str | None = None, max_pixels: int = MAX_PIXELS) -> MultimodalManifest:
    """Dataset ``multimodal-manifest`` (see the module docstring). ``split`` is the recipe's split name: it
    selects rows only with ``split_column``; otherwise the file is the split."""
    if split is not None and split_column is None and split not in (*SPLITS, "rest"):
        from polygraft.interfaces import check_split

        check_split(split, name="multimodal-manifest")
    return MultimodalManifest(path, columns=columns, label=label, label_separator=label_separator, format=format,
                              root=root, skip_invalid=skip_invalid, validate=validate, split=split,
                              split_column=split_column, max_pixels=max_pixels)


__all__ = ["FIELD_TYPES", "MultimodalManifest", "create_multimodal_manifest"]

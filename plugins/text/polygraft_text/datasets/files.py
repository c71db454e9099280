"""``text-csv`` (CSV/TSV/JSONL with text, optional text pair and label) and ``text-lines`` (one document a line).

Every problem names the file and line: undecodable bytes, a missing column, a row with the wrong number of
fields, empty text, a missing label, a broken JSONL line. With ``skip_invalid: true`` such rows are skipped and
counted in ``source.skipped`` (reason → count) instead.

Example:
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "reviews.csv"
    >>> _ = path.write_text("text,label\\ngreat film,pos\\ndull,neg\\n")
    >>> source = TextFileSource(path)
    >>> source[0]["text"], source.label_names
    ('great film', ['neg', 'pos'])
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from polygraft.errors import ConfigError, DataError
from polygraft.interfaces.datasource import InMemorySource
from polygraft_text.datasets.reading import encoding_message, has_undecodable, read_text

FORMATS = ("csv", "tsv", "jsonl")


def guess_format(path: Path) -> str:
    suffixes = [s.lower() for s in path.suffixes]
    for suffix, fmt in ((".tsv", "tsv"), (".tab", "tsv"), (".jsonl", "jsonl"), (".ndjson", "jsonl"),
                        (".json", "jsonl"), (".csv", "csv")):
        if suffix in suffixes:
            return fmt
    raise ConfigError(f"{path}: cannot tell the format from the extension; pass format: csv | tsv | jsonl")


class _Rows:
    """Collects valid examples; invalid rows raise or are skipped and counted on the source (``skip_invalid``)."""

    def __init__(self, path: Path, skip_invalid: bool, source: InMemorySource) -> None:
        self.path = path
        self.skip_invalid = skip_invalid
        self.source = source
        self.examples: list[dict[str, Any]] = []

    def invalid(self, reason: str, line: int, message: str) -> None:
        if not self.skip_invalid:
            raise DataError(message, path=self.path, line=line)
        self.source.skip(reason, f"{self.path}:{line}")


class TextFileSource(InMemorySource):
    """Examples ``{"text", ["text_pair"], ["label"], "_origin"}`` from a CSV, TSV or JSONL file."""

    def __init__(self, path: str | Path, *, format: str | None = None, text_column: str = "text",
                 text_pair_column: str | None = None, label_column: str | None = "label",
                 label_names: list[str] | None = None, skip_invalid: bool = False, encoding: str = "utf-8",
                 split: str | None = None) -> None:
        super().__init__()
        self.path = Path(path)
        self.format = format or guess_format(self.path)
        if self.format not in FORMATS:
            raise ConfigError(f"format must be one of {FORMATS}, got {self.format!r}")
        self.name = self.path.name
        self.columns = {"text": text_column, "text_pair": text_pair_column, "label": label_column}
        rows = _Rows(self.path, skip_invalid, self)
        text = read_text(self.path, encoding)
        if self.format == "jsonl":
            self._read_jsonl(text, rows)
        else:
            self._read_delimited(text, rows, "\t" if self.format == "tsv" else ",")
        self.examples = rows.examples
        if not self.examples:
            raise DataError("no usable rows" + (f" (skipped: {dict(self.skipped)})" if self.skipped else ""),
                            path=self.path)
        if label_column is not None:
            found = sorted({ex["label"] for ex in self.examples})
            self.label_names = list(label_names) if label_names else found
            unknown = sorted(set(found) - set(self.label_names))
            if unknown:
                raise DataError(f"labels {unknown} are not in label_names {self.label_names}", path=self.path)

    def _add(self, rows: _Rows, line: int, record: dict[str, Any]) -> None:
        example: dict[str, Any] = {"_origin": f"{self.path}:{line}"}
        for key, column in self.columns.items():
            if column is None:
                continue
            value = record.get(column)
            if value is None or (isinstance(value, str) and not value.strip()):
                what = "text" if key != "label" else "label"
                rows.invalid(f"empty {what}", line, f"empty {what} in column {column!r}")
                return
            if isinstance(value, str) and has_undecodable(value):
                rows.invalid("encoding error", line, encoding_message())
                return
            if key != "label" and not isinstance(value, str):
                rows.invalid("non-text value", line, f"column {column!r} must hold text, got {value!r}")
                return
            example[key] = str(value) if key == "label" else value
        rows.examples.append(example)

    def _read_delimited(self, text: str, rows: _Rows, delimiter: str) -> None:
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
        try:
            header = next(reader)
        except StopIteration:
            raise DataError("the file is empty; it needs a header row naming the columns", path=self.path,
                            line=1) from None
        self._check_columns(header, line=1)
        start = reader.line_num
        try:
            for fields in reader:
                line, start = start + 1, reader.line_num
                if not fields or all(not f.strip() for f in fields):
                    continue
                if len(fields) != len(header):
                    rows.invalid("wrong field count", line,
                                 f"expected {len(header)} fields like the header, got {len(fields)}; quote fields "
                                 "that contain the delimiter")
                    continue
                self._add(rows, line, dict(zip(header, fields)))
        except csv.Error as exc:
            raise DataError(f"malformed {self.format.upper()}: {exc}", path=self.path, line=reader.line_num) from exc

    def _check_columns(self, available: list[str], *, line: int) -> None:
        missing = [c for c in self.columns.values() if c is not None and c not in available]
        if missing:
            raise DataError(f"missing column(s) {missing}; the file has {available}. Set text_column / "
                            "text_pair_column / label_column (label_column: null for unlabelled text)",
                            path=self.path, line=line)

    def _read_jsonl(self, text: str, rows: _Rows) -> None:
        for line, raw in enumerate(text.splitlines(), start=1):
            if not raw.strip():
                continue
            if has_undecodable(raw):
                rows.invalid("encoding error", line, encoding_message())
                continue
            try:
                record = json.loads(raw)
            except json.JSONDecodeError as exc:
                rows.invalid("broken JSON line", line, f"not valid JSON ({exc.msg} at column {exc.colno})")
                continue
            if not isinstance(record, dict):
                rows.invalid("broken JSON line", line, f"expected a JSON object, got {type(record).__name__}")
                continue
            missing = [c for c in self.columns.values() if c is not None and c not in record]
            if missing:
                rows.invalid("missing column", line, f"missing key(s) {missing}; this line has {sorted(record)}")
                continue
            self._add(rows, line, record)


class TextLinesSource(InMemorySource):
    """A plain-text corpus, one document per line: ``{"text": line, "_origin"}``. Blank lines are counted."""

    def __init__(self, path: str | Path, *, encoding: str = "utf-8", skip_invalid: bool = False,
                 min_chars: int = 1, split: str | None = None) -> None:
        super().__init__()
        self.path = Path(path)
        self.name = self.path.name
        self.label_names = None
        rows = _Rows(self.path, skip_invalid, self)
        for line, raw in enumerate(read_text(self.path, encoding).splitlines(), start=1):
            text = raw.strip()
            if len(text) < min_chars:
                self.skip("blank or short line", f"{self.path}:{line}")
                continue
            if has_undecodable(text):
                rows.invalid("encoding error", line, encoding_message())
                continue
            rows.examples.append({"text": text, "_origin": f"{self.path}:{line}"})
        self.examples = rows.examples
        if not self.examples:
            raise DataError("no text lines", path=self.path)

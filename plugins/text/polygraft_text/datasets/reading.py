"""Shared helpers for reading text files strictly: encoding problems become DataErrors naming file and line.

Files are decoded as UTF-8 by default. Undecodable bytes are kept as surrogates (``surrogateescape``) so that
each bad line can be reported, or skipped and counted, with its own line number. A leading UTF-8 byte-order mark
is removed under every encoding except UTF-16/32 (where those bytes cannot be a mark): a file saved by Excel as
"UTF-8 with BOM" and read with ``encoding: latin-1`` must not get ``ï»¿`` glued to its first column name.

Example:
    >>> from polygraft_text.datasets.reading import has_undecodable
    >>> has_undecodable("caf\\udce9")
    True
"""

from __future__ import annotations

import codecs
from pathlib import Path

from polygraft.errors import ConfigError, DataError

_UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE, codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)


def read_text(path: str | Path, encoding: str = "utf-8") -> str:
    """The file's text; a leading UTF-8 BOM is dropped (whatever the 8-bit ``encoding``), a UTF-16/32 BOM
    under ``encoding='utf-8'`` is a DataError."""
    path = Path(path)
    try:
        codec = codecs.lookup(encoding).name
    except LookupError as exc:
        raise ConfigError(f"unknown encoding {encoding!r} for {path}; use a Python codec name such as utf-8, "
                          "latin-1, cp1252 or utf-16") from exc
    try:
        raw = path.read_bytes()
    except FileNotFoundError as exc:
        raise DataError(f"file not found; check the path (cwd is {Path.cwd()})", path=path) from exc
    except OSError as exc:
        raise DataError(f"cannot read: {exc}", path=path) from exc
    if raw.startswith(codecs.BOM_UTF8) and not codec.startswith(("utf-16", "utf-32")):
        raw = raw[len(codecs.BOM_UTF8):]
    if codec in ("utf-8", "utf-8-sig"):
        if raw.startswith(_UTF16_BOMS):
            raise DataError("the file starts with a UTF-16/UTF-32 byte-order mark; re-save it as UTF-8 or pass "
                            "encoding: utf-16", path=path, line=1)
        return raw.decode("utf-8", errors="surrogateescape")
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise DataError(f"cannot decode as {encoding}: {exc}", path=path, line=line) from exc
    except LookupError as exc:  # a codec that is not a text encoding (base64, rot13...)
        raise ConfigError(f"encoding {encoding!r} is not a text encoding ({exc}); use e.g. utf-8 or latin-1") from exc


def has_undecodable(text: str) -> bool:
    """True when ``text`` holds bytes that were not valid UTF-8 (kept as lone surrogates)."""
    return any("\udc80" <= ch <= "\udcff" for ch in text)


def encoding_message() -> str:
    return "not valid UTF-8; re-save the file as UTF-8, pass encoding: <codec>, or skip_invalid: true"

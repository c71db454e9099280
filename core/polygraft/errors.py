"""Typed exceptions. Every message says what went wrong *and* what to do about it.

Example:
    >>> from polygraft.errors import DataError
    >>> str(DataError("label column 'y' is missing", path="train.csv", line=1))
    "train.csv:1: label column 'y' is missing"
"""

from __future__ import annotations

from pathlib import Path


class PolygraftError(Exception):
    """Base class of every error polygraft raises on purpose."""


class PluginError(PolygraftError):
    """A plugin could not be loaded or registered something invalid."""


class DuplicateComponentError(PolygraftError):
    """Two plugins registered the same component name (pass ``replace=True`` to override on purpose)."""


class UnknownComponentError(PolygraftError, KeyError):
    """A component name is not registered; the message lists the closest names."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class ConfigError(PolygraftError, ValueError):
    """A run configuration or option is invalid."""


class IncompatibleComponentsError(PolygraftError):
    """Two components cannot work together (for example a head that needs feature maps)."""


class WeightsError(PolygraftError):
    """Weights could not be resolved or loaded."""


class AssetError(PolygraftError):
    """A file polygraft needs from a package, the cache or the network is not available; says how to get it."""


class ExportError(PolygraftError):
    """A model cannot be exported in the asked format (no native class fits, an input the graph cannot take...);
    the message says which format or option works instead."""


class TrainingError(PolygraftError):
    """Training cannot go on (non-finite loss, empty data, mismatched resume...)."""


class DataError(PolygraftError, ValueError):
    """Bad input data. Names the file and, where known, the line or row."""

    def __init__(self, message: str, *, path: str | Path | None = None, line: int | None = None) -> None:
        self.path = str(path) if path is not None else None
        self.line = line
        self.reason = message
        where = ""
        if self.path is not None:
            where = f"{self.path}:{line}: " if line is not None else f"{self.path}: "
        super().__init__(where + message)

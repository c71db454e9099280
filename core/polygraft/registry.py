"""Strict, typed registries: one per component kind.

Registering a name twice is an error that names both providers (unless ``replace=True``). Asking for an
unknown name lists the closest known names with the plugin that provides each.

Example:
    >>> from polygraft.registry import Registry
    >>> from polygraft.specs import DatasetSpec
    >>> reg = Registry("dataset")
    >>> reg.register(DatasetSpec(name="csv", factory="m:f"), owner="polygraft-text")
    >>> reg.get("csv").name
    'csv'
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from polygraft.errors import DuplicateComponentError, PluginError, UnknownComponentError
from polygraft.specs import KIND_PLURALS, SPEC_TYPES, ComponentSpec

# Where a first-party component lives, for the hint when that plugin is not installed.
FIRST_PARTY_HINTS: Mapping[tuple[str, str], str] = {
    ("backbone", "bert"): "polygraft-text",
    ("backbone", "timm"): "polygraft-vision",
    ("backbone", "wav2vec2"): "polygraft-speech",
    ("objective", "mlm"): "polygraft-text",
    ("objective", "simclr"): "polygraft-vision",
    ("objective", "wav2vec2"): "polygraft-speech",
    ("weights", "minilm-l6"): "polygraft-text",
    ("weights", "efficientnet-lite0-imagenet"): "polygraft-vision",
    ("weights", "mobilenetv2-imagenet"): "polygraft-vision",
}


@dataclass(frozen=True)
class Entry:
    """A registered spec and the plugin that registered it."""

    spec: ComponentSpec
    owner: str


class Registry:
    """Components of one kind, by name."""

    def __init__(self, kind: str) -> None:
        if kind not in SPEC_TYPES:
            raise ValueError(f"unknown component kind {kind!r}; expected one of {sorted(SPEC_TYPES)}")
        self.kind = kind
        self._entries: dict[str, Entry] = {}
        self.unavailable_plugins: dict[str, str] = {}  # plugin -> error, filled by the catalog

    def register(self, spec: ComponentSpec, *, owner: str, replace: bool = False) -> None:
        """Add ``spec``; a second spec with the same name raises unless ``replace`` is true."""
        expected = SPEC_TYPES[self.kind]
        if not isinstance(spec, expected):
            raise PluginError(
                f"plugin {owner!r} registered {type(spec).__name__} {getattr(spec, 'name', spec)!r} "
                f"as a {self.kind}; use {expected.__name__}"
            )
        previous = self._entries.get(spec.name)
        if previous is not None and not replace:
            raise DuplicateComponentError(
                f"{self.kind} {spec.name!r} is registered twice: by {previous.owner!r} and by {owner!r}. "
                f"Rename one, disable a plugin with POLYGRAFT_DISABLE_PLUGINS={owner}, "
                "or register with replace=True to override on purpose."
            )
        self._entries[spec.name] = Entry(spec, owner)

    def unregister(self, name: str) -> None:
        """Remove ``name`` (used to roll back a plugin whose registration failed half-way)."""
        self._entries.pop(name, None)

    def get(self, name: str) -> ComponentSpec:
        """The spec called ``name``; raises :class:`UnknownComponentError` with suggestions."""
        return self.entry(name).spec

    def entry(self, name: str) -> Entry:
        """The spec called ``name`` with its owner."""
        try:
            return self._entries[name]
        except KeyError:
            raise UnknownComponentError(self._unknown_message(name)) from None

    def owner(self, name: str) -> str:
        """Which plugin registered ``name``."""
        return self.entry(name).owner

    def names(self) -> list[str]:
        return sorted(self._entries)

    def entries(self) -> list[Entry]:
        return [self._entries[name] for name in self.names()]

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[ComponentSpec]:
        return (entry.spec for entry in self.entries())

    def __len__(self) -> int:
        return len(self._entries)

    def _unknown_message(self, name: str) -> str:
        plural = KIND_PLURALS[self.kind]
        lines = [f"unknown {self.kind} {name!r}."]
        close = difflib.get_close_matches(name, list(self._entries), n=3, cutoff=0.5)
        if close:
            suggestions = ", ".join(f"{c!r} (from {self._entries[c].owner})" for c in close)
            lines.append(f"Did you mean {suggestions}?")
        hint = FIRST_PARTY_HINTS.get((self.kind, name))
        if hint and hint not in {e.owner for e in self._entries.values()}:
            lines.append(f"{self.kind} {name!r} is provided by the plugin {hint}: pip install {hint}")
        for plugin, error in sorted(self.unavailable_plugins.items()):
            lines.append(f"Note: plugin {plugin!r} failed to load ({error}); it may provide it.")
        known = ", ".join(self.names()) or "none"
        lines.append(f"Known {plural}: {known}. See `polygraft list {plural}`.")
        return " ".join(lines)

"""A strict, typed registry of component specs, one per kind, that no load order can fool.

Several plugins may claim the same name. The claim that answers the bare name is decided by a rule, never by the
order plugins happened to load in:

1. a claim registered with ``replace=True`` (an override made on purpose) wins;
2. otherwise a first-party claim (core, polygraft-text, -vision, -speech) wins;
3. otherwise a name claimed by exactly one plugin is that plugin's;
4. otherwise the bare name is ambiguous and using it is an error naming every owner.

Every claim stays reachable by its qualified name ``owner:name`` (``polygraft-vision:timm``), and contested names
are reported with all their owners (``polygraft plugins``). A name may also be reached through a spec's
``aliases``. Unknown names are answered with the closest known names.

Example:
    >>> from polygraft.registry import Registry
    >>> from polygraft.specs import DatasetSpec
    >>> reg = Registry("dataset", first_party={"polygraft-text"})
    >>> reg.register(DatasetSpec(name="csv", factory="m:f"), owner="my-plugin")
    >>> reg.register(DatasetSpec(name="csv", factory="n:g"), owner="polygraft-text")
    >>> reg.get("csv").factory, reg.get("my-plugin:csv").factory
    ('n:g', 'm:f')
"""

from __future__ import annotations

import difflib
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass

from polygraft.errors import DuplicateComponentError, PluginError, UnknownComponentError
from polygraft.specs import KIND_PLURALS, SPEC_TYPES, ComponentSpec

# Where a first-party component lives, for the hint when that plugin is not installed.
FIRST_PARTY_HINTS: Mapping[tuple[str, str], str] = {
    ("backbone", "bert"): "polygraft-text",
    ("backbone", "timm"): "polygraft-vision",
    ("backbone", "wav2vec2"): "polygraft-speech",
    ("backbone", "whisper-encoder"): "polygraft-speech",
    ("backbone", "spectrogram"): "polygraft-speech",
    ("objective", "mlm"): "polygraft-text",
    ("objective", "simclr"): "polygraft-vision",
    ("objective", "wav2vec2"): "polygraft-speech",
    ("weights", "minilm-l6"): "polygraft-text",
    ("weights", "efficientnet-lite0-imagenet"): "polygraft-vision",
    ("weights", "mobilenetv2-imagenet"): "polygraft-vision",
    ("weights", "whisper-tiny-en"): "polygraft-speech",
}
QUALIFIER = ":"


@dataclass(frozen=True)
class Entry:
    """A registered spec and the plugin (distribution) that registered it."""

    spec: ComponentSpec
    owner: str
    replace: bool = False
    first_party: bool = False

    @property
    def qualified_name(self) -> str:
        return f"{self.owner}{QUALIFIER}{self.spec.name}"


class Registry:
    """Components of one kind, by name."""

    def __init__(self, kind: str, *, first_party: Collection[str] = ()) -> None:
        if kind not in SPEC_TYPES:
            raise ValueError(f"unknown component kind {kind!r}; expected one of {sorted(SPEC_TYPES)}")
        self.kind = kind
        self.first_party = set(first_party)
        self._claims: dict[str, list[Entry]] = {}  # name or alias -> every claim on it, in registration order
        self.unavailable_plugins: dict[str, str] = {}  # plugin -> error, filled by the catalog

    # ---------------------------------------------------------------- registering
    def register(self, spec: ComponentSpec, *, owner: str, replace: bool = False) -> None:
        """Add ``spec`` as a claim of ``owner`` on its name and aliases (see the module docstring)."""
        expected = SPEC_TYPES[self.kind]
        if not isinstance(spec, expected):
            raise PluginError(
                f"plugin {owner!r} registered {type(spec).__name__} {getattr(spec, 'name', spec)!r} "
                f"as a {self.kind}; use {expected.__name__}"
            )
        entry = Entry(spec, owner, replace=replace, first_party=owner in self.first_party)
        for name in (spec.name, *spec.aliases):
            if QUALIFIER in name:
                raise PluginError(f"{self.kind} name {name!r} of plugin {owner!r} must not contain {QUALIFIER!r}")
            if any(claim.owner == owner for claim in self._claims.get(name, [])):
                raise DuplicateComponentError(f"plugin {owner!r} registers the {self.kind} name {name!r} twice")
        for name in (spec.name, *spec.aliases):
            self._claims.setdefault(name, []).append(entry)

    def unregister_owner(self, owner: str) -> None:
        """Remove every claim of ``owner`` (a plugin whose registration failed half-way)."""
        for name in list(self._claims):
            kept = [claim for claim in self._claims[name] if claim.owner != owner]
            if kept:
                self._claims[name] = kept
            else:
                del self._claims[name]

    # ---------------------------------------------------------------- resolving
    def _winner(self, name: str) -> Entry | None:
        claims = self._claims.get(name, [])
        if self.kind == "modality" and len({claim.spec.input_key for claim in claims}) == 1:  # type: ignore[attr-defined]
            # plugins that declare the same modality with the same input key agree: no ambiguity
            return min(claims, key=lambda claim: (not claim.first_party, claim.owner))
        for rule in (lambda c: c.replace, lambda c: c.first_party, lambda c: True):
            chosen = [claim for claim in claims if rule(claim)]
            if len(chosen) == 1:
                return chosen[0]
            if len(chosen) > 1:
                return None
        return None

    def entry(self, name: str) -> Entry:
        """The claim that answers ``name`` (bare, alias or ``owner:name``), or a clear error."""
        owner, qualifier, bare = name.rpartition(QUALIFIER)
        if qualifier:
            for claim in self._claims.get(bare, []):
                if claim.owner == owner:
                    return claim
            raise UnknownComponentError(self._unknown_message(name))
        if name not in self._claims:
            raise UnknownComponentError(self._unknown_message(name))
        winner = self._winner(name)
        if winner is None:
            owners = ", ".join(repr(c.qualified_name) for c in self._claims[name])
            raise DuplicateComponentError(
                f"{self.kind} {name!r} is provided by several plugins and none takes precedence; pick one by its "
                f"qualified name: {owners} (or disable a plugin with POLYGRAFT_DISABLE_PLUGINS)"
            )
        return winner

    def stable_name(self, name: str) -> str:
        """The name to save in a model so that it finds the same claim again: the canonical bare name when it
        answers to this claim, else ``owner:name``."""
        entry = self.entry(name)
        try:
            same = self.entry(entry.spec.name) is entry
        except Exception:
            same = False
        return entry.spec.name if same else entry.qualified_name

    def get(self, name: str) -> ComponentSpec:
        """The spec answering ``name``; raises :class:`UnknownComponentError` with suggestions."""
        return self.entry(name).spec

    def owner(self, name: str) -> str:
        """Which plugin's claim answers ``name``."""
        return self.entry(name).owner

    def contested(self) -> dict[str, list[Entry]]:
        """Names claimed by more than one plugin → every claim (reported by ``polygraft plugins``)."""
        return {name: list(claims) for name, claims in sorted(self._claims.items()) if len(claims) > 1}

    def names(self) -> list[str]:
        """Canonical names of the components that answer a bare name (aliases not repeated)."""
        return sorted({entry.spec.name for entry in self.entries()})

    def entries(self) -> list[Entry]:
        """The claim that answers each canonical name (ambiguous names are left out: see ``all_entries``)."""
        out = []
        for name in sorted(self._claims):
            winner = self._winner(name)
            if winner is not None and winner.spec.name == name:
                out.append(winner)
        return out

    def all_entries(self) -> list[Entry]:
        """Every claim, answering or not (one per owner and canonical name)."""
        out: dict[tuple[str, str], Entry] = {}
        for claims in self._claims.values():
            for claim in claims:
                out.setdefault((claim.owner, claim.spec.name), claim)
        return sorted(out.values(), key=lambda e: (e.spec.name, e.owner))

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        owner, qualifier, bare = name.rpartition(QUALIFIER)
        if qualifier:
            return any(claim.owner == owner for claim in self._claims.get(bare, []))
        return name in self._claims

    def __iter__(self) -> Iterator[ComponentSpec]:
        return (entry.spec for entry in self.entries())

    def __len__(self) -> int:
        return len(self.names())

    def _unknown_message(self, name: str) -> str:
        plural = KIND_PLURALS[self.kind]
        lines = [f"unknown {self.kind} {name!r}."]
        close = difflib.get_close_matches(name, list(self._claims), n=3, cutoff=0.5)
        if close:
            suggestions = ", ".join(f"{c!r} (from {self._claims[c][0].owner})" for c in close)
            lines.append(f"Did you mean {suggestions}?")
        hint = FIRST_PARTY_HINTS.get((self.kind, name))
        if hint and not any(c.owner == hint for claims in self._claims.values() for c in claims):
            lines.append(f"{self.kind} {name!r} is provided by the plugin {hint}: pip install {hint}")
        for plugin, error in sorted(self.unavailable_plugins.items()):
            lines.append(f"Note: plugin {plugin!r} failed to load ({error}); it may provide it.")
        known = ", ".join(self.names()) or "none"
        lines.append(f"Known {plural}: {known}. See `polygraft list {plural}`.")
        return " ".join(lines)

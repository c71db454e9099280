"""The one door through which every registered component is built, and the one parser for named lists.

:func:`build` finds a spec (with the registry's suggestions for unknown names), checks the options against the
factory (:mod:`polygraft.options`) and calls it; a factory that still rejects its keyword arguments becomes a
:class:`~polygraft.errors.ConfigError`, never a raw ``TypeError``. :func:`parse_entries` reads recipe lists
such as ``strategy:`` and ``callbacks:`` where each item is a name or ``{name: ..., **options}``.

Example:
    >>> from polygraft.components import build, parse_entries
    >>> from polygraft.plugins import build_catalog
    >>> catalog = build_catalog(autoload=False)
    >>> parse_entries(["full", {"name": "ema", "decay": 0.99}], where="strategy")
    [('full', {}), ('ema', {'decay': 0.99})]
    >>> build(catalog, "callback", "early-stopping", {"patience": 2}).patience
    2
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from polygraft.errors import ConfigError
from polygraft.options import check_options, declared_options

if TYPE_CHECKING:
    from polygraft.plugins import Catalog
    from polygraft.specs import ComponentSpec


def parse_entry(item: Any, *, where: str) -> tuple[str, dict[str, Any]]:
    """``"ema"`` → ``("ema", {})``; ``{"name": "ema", "decay": 0.9}`` → ``("ema", {"decay": 0.9})``."""
    if isinstance(item, str) and item:
        return item, {}
    if isinstance(item, Mapping):
        options = dict(item)
        name = options.pop("name", None)
        if isinstance(name, str) and name:
            return name, options
        raise ConfigError(f"{where}: {dict(item)!r} has no 'name'; write e.g. {{name: ema, decay: 0.999}}")
    raise ConfigError(f"{where}: each entry is a name or a mapping with a 'name' key, got "
                      f"{type(item).__name__}: {item!r}")


def parse_entries(items: Any, *, where: str) -> list[tuple[str, dict[str, Any]]]:
    """A recipe list (or a single entry) as ``(name, options)`` pairs; ``None`` is the empty list."""
    if items is None:
        return []
    if isinstance(items, str | Mapping):
        items = [items]
    if not isinstance(items, Sequence):
        raise ConfigError(f"{where} must be a list of names or {{name: ..., options}} mappings, got {items!r}")
    return [parse_entry(item, where=f"{where}[{index}]") for index, item in enumerate(items)]


def describe_component(spec: ComponentSpec) -> str:
    return f"{spec.kind} {spec.name!r}"


def checked_options(spec: ComponentSpec, options: Mapping[str, Any], *, supplied: Sequence[str] = (),
                    where: str = "") -> dict[str, Any]:
    """``options`` validated against the spec's factory (imports the factory's module, not more)."""
    what = describe_component(spec) + (f" ({where})" if where else "")
    return check_options(spec.load_factory(), options, what=what, supplied=tuple(supplied),
                         declared=declared_options(spec.metadata))


def build(catalog: Catalog, kind: str, name: str, options: Mapping[str, Any] | None = None, *,
          where: str = "", **supplied: Any) -> Any:
    """Create component ``name`` of ``kind`` with user ``options`` (checked) and core-``supplied`` arguments."""
    spec = catalog.get(kind, name)
    factory = spec.load_factory()
    clean = checked_options(spec, dict(options or {}), supplied=list(supplied), where=where)
    try:
        component = factory(**supplied, **clean)
    except TypeError as exc:
        text = str(exc)
        if "unexpected keyword argument" in text or "required keyword" in text or "positional argument" in text:
            raise ConfigError(f"{describe_component(spec)}: {text}; check its options "
                              f"(`polygraft list {spec.kind}s`)") from exc
        raise
    if hasattr(component, "spec_name"):
        component.spec_name = catalog.registry(kind).stable_name(name)
    return component

"""The one door through which every registered component is built, and the one parser for named lists.

:func:`build` finds a spec (with the registry's suggestions for unknown names), checks the options against the
factory (:mod:`polygraft.options`, also public as :func:`check_options`) and calls it; a factory that still rejects
its keyword arguments becomes a :class:`~polygraft.errors.ConfigError`, never a raw ``TypeError``. The checked
options are recorded once, as the component's ``build_options`` (what a saved model rebuilds it with), unless the
factory recorded its own. A factory that declares a ``catalog`` parameter (a composite, such as a backbone built
from other backbones) receives the caller's catalog, so isolated catalogs (tests, the plugin kit) reach its parts;
:func:`build_backbone` builds such a part with its weights resolved exactly as ``polygraft.create_backbone`` does
(an alias, a local path, a polygraft run directory). :func:`parse_entries` reads recipe lists
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
from pathlib import Path
from typing import TYPE_CHECKING, Any

from polygraft.errors import ConfigError, IncompatibleComponentsError, WeightsError
from polygraft.options import check_options as _check_options
from polygraft.options import declared_options, factory_options

if TYPE_CHECKING:
    from polygraft.interfaces import Backbone
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


def check_options(spec: ComponentSpec, options: Mapping[str, Any], *, supplied: Sequence[str] = (),
                  where: str = "") -> dict[str, Any]:
    """``options`` validated against the spec's factory (imports the factory's module, not more): unknown names
    with the closest valid ones, wrong types, missing required options, each a :class:`ConfigError`.
    ``supplied`` names the arguments the caller passes itself (``weights``, ``backbone``...)."""
    what = describe_component(spec) + (f" ({where})" if where else "")
    return _check_options(spec.load_factory(), options, what=what, supplied=(*supplied, "catalog"),
                          declared=declared_options(spec.metadata))


checked_options = check_options  # the name used before 0.1.x; kept for plugins


def _too_big(spec: ComponentSpec, options: Mapping[str, Any], reason: str) -> str:
    sizes = {k: v for k, v in options.items() if isinstance(v, int | float) and not isinstance(v, bool)}
    return (f"{describe_component(spec)} cannot be built in this machine's memory with {sizes or dict(options)} "
            f"({reason}); lower its sizes")


def build(catalog: Catalog, kind: str, name: str, options: Mapping[str, Any] | None = None, *,
          where: str = "", **supplied: Any) -> Any:
    """Create component ``name`` of ``kind`` with user ``options`` (checked) and core-``supplied`` arguments."""
    spec = catalog.get(kind, name)
    factory = spec.load_factory()
    clean = check_options(spec, dict(options or {}), supplied=list(supplied), where=where)
    if "catalog" in factory_options(factory, declared_options(spec.metadata))[0]:
        supplied = {**supplied, "catalog": catalog}
    try:
        component = factory(**supplied, **clean)
    except TypeError as exc:
        text = str(exc)
        if "unexpected keyword argument" in text or "required keyword" in text or "positional argument" in text:
            raise ConfigError(f"{describe_component(spec)}: {text}; check its options "
                              f"(`polygraft list {spec.kind}s`)") from exc
        raise
    except MemoryError:
        raise ConfigError(_too_big(spec, clean, "out of memory")) from None
    except RuntimeError as exc:  # torch's CPU allocator: "can't allocate memory: you tried to allocate N bytes"
        if "allocate" in str(exc) and "memory" in str(exc):
            raise ConfigError(_too_big(spec, clean, str(exc).strip().splitlines()[-1][:160])) from None
        raise
    if hasattr(component, "spec_name"):
        component.spec_name = catalog.registry(kind).stable_name(name)
    if isinstance(getattr(component, "build_options", None), dict) and not component.build_options:
        component.build_options = dict(clean)
    return component


def resolve_weights(weights: str | Path, *, backbone: str, catalog: Catalog) -> tuple[str, dict[str, Any]]:
    """A registered alias → (local path, the backbone options its spec declares); paths and hub ids pass through."""
    from polygraft.specs import WeightsSpec

    registry = catalog.registry("weights")
    name = str(weights)
    if name in registry:
        spec = registry.get(name)
        assert isinstance(spec, WeightsSpec)
        backbones = catalog.registry("backbone")
        same = spec.backbone in backbones and backbones.get(spec.backbone) is backbones.get(backbone)
        if spec.backbone and spec.backbone != backbone and not same:
            raise IncompatibleComponentsError(
                f"weights {name!r} are for backbone {spec.backbone!r}, not {backbone!r}: "
                f"use create_backbone({spec.backbone!r}, weights={name!r})"
            )
        return str(spec.load_factory()()), dict(spec.backbone_options)
    from polygraft.paths import exists

    if exists(name) or "/" in name or name.startswith("hf-hub:"):
        if len(name) > 4096:
            raise WeightsError(f"weights {name[:60]!r}... is {len(name):,} characters long: not a path or a name")
        return name, {}
    known = ", ".join(registry.names()) or "none"
    raise WeightsError(
        f"weights {name!r} are neither a registered alias, a local path nor a hub id (org/name). "
        f"Known aliases: {known}. See `polygraft list weights`."
    )


def build_backbone(catalog: Catalog, name: str, *, weights: str | Path | None = None,
                   options: Mapping[str, Any] | None = None, where: str = "backbone_options") -> Backbone:
    """Backbone ``name`` from ``catalog``, random-init or from ``weights`` (a registered alias, a local path, a
    polygraft run or model directory, a hub id): what ``polygraft.create_backbone`` does, for core components that
    build backbones of their own (``fusion`` builds its branches with it). ``where`` prefixes option errors."""
    from polygraft.model_io import find_model_dir

    options = dict(options or {})
    model_dir = find_model_dir(weights) if weights is not None else None
    if model_dir is not None:
        return _backbone_from_model_dir(catalog, name, model_dir, options, where=where)
    path, preset = (None, {}) if weights is None else resolve_weights(weights, backbone=name, catalog=catalog)
    return build(catalog, "backbone", name, {**preset, **options}, where=where, weights=path)


def _backbone_from_model_dir(catalog: Catalog, name: str, model_dir: Path, options: Mapping[str, Any], *,
                             where: str) -> Backbone:
    """A backbone rebuilt from a polygraft model directory (its saved options) with its saved weights."""
    from polygraft.model_io import backbone_options, load_weights_into, read_model_config, weights_file
    from polygraft.run import RunDirectory

    RunDirectory(model_dir.parent if model_dir.name == "model" else model_dir, enabled=False).check_finished()
    config = read_model_config(model_dir)
    saved = config["backbone"]["name"]
    registry = catalog.registry("backbone")
    if registry.get(saved) is not registry.get(name):
        raise IncompatibleComponentsError(f"{model_dir} holds a {saved!r} backbone, not {name!r}; use backbone: {saved}")
    built = {**backbone_options(config, model_dir), **options}
    backbone = build_saved_backbone(catalog, name, built, config.get("preprocessing"), where=where)
    prefix = "" if config["kind"] == "backbone" else "backbone."
    load_weights_into(backbone, weights_file(model_dir), prefix=prefix)
    return backbone


def build_saved_backbone(catalog: Catalog, name: str, options: Mapping[str, Any], preprocessing: Any, *,
                         where: str) -> Backbone:
    """A saved model's backbone, random-init, from its saved ``options``. A preprocessing limit that was off when
    the model was saved, that the saved options leave out and that a default turns on now (wav2vec2's
    ``max_seconds`` became 30) is turned off again, so older runs keep loading as they were trained."""
    import json

    backbone = build(catalog, "backbone", name, options, where=where, weights=None)
    if not isinstance(preprocessing, Mapping):
        return backbone
    rebuilt = json.loads(json.dumps(backbone.preprocessor.describe(), default=str))
    # only a limit that was off (absent or None) when the model was saved and that a default turns on now: a
    # saved value is never filled in (an export() that loses fitted state must still fail, as the kit checks);
    # the caller's preprocessing check compares the result with the saved description as a whole
    stale = {key: None for key in rebuilt
             if key not in options and preprocessing.get(key) is None and rebuilt[key] is not None}
    if not stale:
        return backbone
    try:
        return build(catalog, "backbone", name, {**options, **stale}, where=where, weights=None)
    except ConfigError:  # not options of the backbone: the preprocessing check names the difference
        return backbone

"""``check_plugin``: run every component a plugin registers with tiny settings and report what is wrong.

Keyword tables (``options``, ``examples``, ``pairs``, ``skip``) are keyed by a component's name, or by
``"<kind>:<name>"`` where two kinds share a name (``"objective:wav2vec2"``). An ``options`` value is one dict or a
list of dicts (each configuration is checked). Nothing is skipped silently: a component the kit cannot run
(a dataset that needs a path, a new modality without examples) fails the check until you pass what it needs or
name it in ``skip`` with a reason.

Example:
    >>> from polygraft.conformance.plugin import check_plugin
    >>> report = check_plugin("polygraft", options={"toy": {"in_features": 3}}, options_only=True,
    ...                       examples={"toy": [{"x": [[0.0, 1.0, 2.0]] * 2}, {"x": [[1.0, 0.0, 2.0]] * 3}]})
    >>> report.passed
    True
"""

from __future__ import annotations

import dataclasses
import importlib
import re
from collections.abc import Iterable, Mapping, Sequence
from importlib.metadata import entry_points
from types import ModuleType
from typing import TYPE_CHECKING, Any

from polygraft.conformance.backbones import check_backbone_checks
from polygraft.conformance.components import (
    check_command,
    check_objective,
    check_simple,
    check_task,
    check_weights,
    classification_step,
)
from polygraft.conformance.datasets import check_dataset_checks
from polygraft.conformance.report import Report, lookup
from polygraft.conformance.steps import Steps, require

if TYPE_CHECKING:
    from polygraft.plugins import Catalog

KIND_ORDER = ("modality", "backbone", "dataset", "weights", "task", "objective", "strategy", "callback", "command")


def resolve_plugin(plugin: str | ModuleType | object) -> list[tuple[str, object, str, str | None]]:
    """``(entry-point name, module, distribution, module name)`` for a module, a module name, an entry-point
    name or a distribution name."""
    from polygraft.plugins import BUILTIN_PLUGIN, CORE_DISTRIBUTION, _entry_point_distribution

    if not isinstance(plugin, str):
        name = getattr(plugin, "__name__", type(plugin).__name__)
        module_name = name if isinstance(plugin, ModuleType) else None
        return [(name, plugin, "polygraft" if name == BUILTIN_PLUGIN else name, module_name)]
    if plugin in (CORE_DISTRIBUTION, BUILTIN_PLUGIN):
        return [("polygraft", importlib.import_module(BUILTIN_PLUGIN), CORE_DISTRIBUTION, BUILTIN_PLUGIN)]
    found = []
    for ep in entry_points(group="polygraft"):
        distribution, _ = _entry_point_distribution(ep)
        if plugin in (ep.name, distribution, ep.value):
            found.append((ep.name, ep.load(), distribution, ep.value.partition(":")[0]))
    if found:
        return found
    try:
        module = importlib.import_module(plugin)
    except ImportError as exc:
        raise LookupError(f"no installed plugin, distribution or module named {plugin!r} ({exc}); pass the plugin "
                          "module itself, its module name, or its entry-point name") from exc
    return [(plugin, module, plugin, plugin)]


def _option_sets(options: Mapping[str, Any] | None, kind: str, name: str) -> list[dict[str, Any]]:
    value = lookup(options, kind, name, {})
    if isinstance(value, Mapping):
        return [dict(value)]
    return [dict(v) for v in value] or [{}]


def _plugin_checks(report: Report, plugins: Sequence[tuple[str, object, str, str | None]], catalog: Catalog,
                   check_imports: bool) -> bool:
    from polygraft.conformance.probe import heavy_imports_of_plugin
    from polygraft.importcheck import factory_problems

    steps = Steps(report, f"plugin {report.plugin!r}")
    distributions = {distribution for _, _, distribution, _ in plugins}
    infos = [info for info in catalog.plugins if info.distribution in distributions]
    for info in infos:
        if info.status != "ok":
            report.fail(steps.component, "loads and registers", _hook_hint(str(info.error)))
            return False
    steps.run("hook names are polygraft hooks, marked with @hookimpl", lambda: None)
    steps.run("registers something", lambda: require(any(info.counts for info in infos),
              "the plugin registered nothing: check that each hook is named polygraft_register_<kind>s, is marked "
              "@hookimpl and calls register(spec)"))
    if check_imports:
        for _, _, _, module_name in plugins:
            if module_name:
                steps.run(f"{module_name} imports nothing heavy", lambda m=module_name: require(
                    not (heavy := heavy_imports_of_plugin(m)),
                    f"{m} imports {heavy} at module level; import them inside factories"))
    for problem in factory_problems(catalog, owners=distributions):
        report.fail(f"{problem.kind} {problem.name!r}", "factory module can be imported", problem.problem)
    for info in infos:
        for note in info.notes:
            if "also claimed" in note:
                steps.warn("names", note)
    return True


def _hook_hint(error: str) -> str:
    """Pluggy's "unknown hook 'x' in plugin ..." with the closest polygraft hook name."""
    from polygraft.hookspecs import COLLECTING_HOOKS
    from polygraft.options import closest

    found = re.search(r"unknown hook '([^']+)'", error)
    if not found:
        return error
    near = closest(found.group(1), list(COLLECTING_HOOKS), n=1) or \
        closest("polygraft_" + found.group(1), list(COLLECTING_HOOKS), n=1)
    hint = f": did you mean {near[0]!r}?" if near else f": {', '.join(COLLECTING_HOOKS)}"
    return (f"unknown hook {found.group(1)!r}; hooks are named polygraft_register_<kinds>{hint} (a function "
            f"marked @hookimpl must be a polygraft hook)")


def _installed_clashes(report: Report, plugins: Sequence[tuple[str, object, str, str | None]]) -> None:
    """Names the plugin shares with the other installed plugins (users then need ``owner:name``)."""
    from polygraft.plugins import build_catalog

    try:
        installed = build_catalog(disabled=())
    except Exception:  # pragma: no cover - the installed set is not what is being checked
        return
    present = {info.distribution for info in installed.plugins}
    extra: list[Any] = [(n, m, d) for n, m, d, _ in plugins if d not in present]
    if extra:
        installed = build_catalog(disabled=(), plugins=extra)
    distributions = {d for _, _, d, _ in plugins}
    for info in installed.plugins:
        if info.distribution in distributions:
            for note in info.notes:
                if "also claimed" in note:
                    report.warn(f"plugin {report.plugin!r}", "names shared with installed plugins", note)


def check_plugin(plugin: str | ModuleType | object, *, options: Mapping[str, Any] | None = None,
                 examples: Sequence[Mapping[str, Any]] | Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
                 pairs: Mapping[str, str] | None = None, skip: Mapping[str, str] | None = None,
                 with_plugins: Iterable[tuple[str, object]] = (), check_imports: bool = True,
                 check_installed_names: bool = True, options_only: bool = False, check_export: bool = True,
                 raise_on_failure: bool = True) -> Report:
    """Check every component ``plugin`` registers; raise :class:`~polygraft.conformance.report.CheckFailed`
    listing what to fix (or return the :class:`Report` with ``raise_on_failure=False``).

    Args:
        plugin: the plugin module, its module name, its entry-point name or its distribution name.
        options: tiny options per component (``{"mlp": {"hidden": 8}, "my-csv": {"path": "..."}}``).
        examples: raw examples for every backbone (a list), or per component (``{"mlp": [...], "task:x": [...]}``);
            defaults exist for the input keys ``text``, ``image``, ``audio`` and ``x``.
        pairs: which backbone a task or objective is checked on (``{"objective:mlm": "bert"}``); by default one
            of the plugin's backbones of the same modality (``toy`` for modality-free tasks).
        skip: components not to check, with the reason (reported).
        with_plugins: other ``(name, module)`` plugins the checked one needs in its isolated catalog.
        check_imports: probe in a fresh interpreter that the plugin module imports nothing heavy.
        check_installed_names: warn about names the plugin shares with installed plugins.
        options_only: check only components named in ``options`` (and their pairs), for a quick test.
        check_export: export each backbone (its first set of options) inside the classification task to ONNX and
            compare ONNX Runtime with PyTorch (see :mod:`polygraft.conformance.exporting`); it runs last, once every
            other check passed.
    """
    from polygraft.plugins import build_catalog

    resolved = resolve_plugin(plugin)
    report = Report(resolved[0][2])
    builtin = resolved[0][2] == "polygraft"
    extra: list[Any] = [(name, module, distribution) for name, module, distribution, _ in resolved] if not builtin else []
    catalog = build_catalog(autoload=False, disabled=(), plugins=[*extra, *with_plugins])
    if not _plugin_checks(report, resolved, catalog, check_imports):
        if raise_on_failure:
            report.raise_for_failures()
        return report
    if check_installed_names and not builtin:
        _installed_clashes(report, resolved)
    owners = {distribution for _, _, distribution, _ in resolved}
    _check_keys(report, catalog, owners, options=options, examples=examples, pairs=pairs, skip=skip)
    checked_backbones: dict[str, tuple[Any, list[dict[str, Any]], dict[str, Any]]] = {}
    exports: list[Any] = []  # export checks run last, once everything else passed
    sources: dict[str, Any] = {}
    for kind in KIND_ORDER:
        answering = {id(entry) for entry in catalog.registry(kind).entries()}
        for entry in catalog.registry(kind).all_entries():
            if entry.owner not in owners:
                continue
            # a name the plugin shares with a plugin in with_plugins is checked by its qualified name
            name = entry.spec.name if id(entry) in answering or kind == "modality" else entry.qualified_name
            if name != entry.spec.name:
                entry = dataclasses.replace(entry, spec=dataclasses.replace(entry.spec, name=name))
            if options_only and lookup(options, kind, name) is None and lookup(pairs, kind, name) is None:
                report.skipped(f"{kind} {name!r}", "not named in options (options_only=True)")
                continue
            reason = lookup(skip, kind, name)
            if reason is not None:
                report.skipped(f"{kind} {name!r}", str(reason))
                continue
            if kind == "modality":
                Steps(report, f"modality {name!r}").run("declares an input key", lambda s=entry.spec: require(
                    bool(s.input_key), f"ModalitySpec {s.name!r} needs input_key= (the raw example key its "
                                       "preprocessors read, e.g. 'x')"))
            elif kind == "backbone":
                _check_backbone(catalog, report, name, options, examples, checked_backbones,
                                exports if check_export else None)
            elif kind == "dataset":
                for index, opts in enumerate(_option_sets(options, kind, name)):
                    partner = next(((n, b[0]) for n, b in checked_backbones.items()
                                    if catalog.get("backbone", n).modality == entry.spec.modality), None)
                    label = f"dataset {name!r}" + (f" #{index + 1}" if index else "")
                    source = check_dataset_checks(catalog, name, opts, report, backbone=partner, component=label)
                    if source is not None:
                        sources.setdefault(name, source)
            elif kind == "weights":
                check_weights(catalog, entry.spec, report)
            elif kind == "command":
                check_command(entry.spec, report)
            elif kind in ("task", "objective"):
                check = check_task if kind == "task" else check_objective
                check(catalog, entry.spec, report, options=options, examples=examples, pairs=pairs,
                      backbones=checked_backbones, sources=sources)
            else:
                check_simple(catalog, kind, name, _option_sets(options, kind, name)[0], report)
    from polygraft.conformance.exporting import run_queued_exports

    run_queued_exports(exports, report)
    if raise_on_failure:
        report.raise_for_failures()
    return report


def _check_keys(report: Report, catalog: Catalog, owners: set[str], **tables: Any) -> None:
    """A bare key naming components of two kinds (backbone and objective ``wav2vec2``) is ambiguous."""
    kinds_of: dict[str, list[str]] = {}
    for kind in KIND_ORDER:
        for entry in catalog.registry(kind).all_entries():
            if entry.owner in owners:
                kinds_of.setdefault(entry.spec.name, []).append(kind)
    for table_name, table in tables.items():
        if not isinstance(table, Mapping):
            continue
        for key in table:
            kinds = kinds_of.get(key, [])
            if len(kinds) > 1:
                report.fail(f"plugin {report.plugin!r}", f"{table_name} keys",
                            f"{key!r} names a {' and a '.join(kinds)}; write "
                            f"{' or '.join(repr(f'{k}:{key}') for k in kinds)}")


def _check_backbone(catalog: Catalog, report: Report, name: str, options: Mapping[str, Any] | None,
                    examples: Any, checked: dict[str, Any], exports: list[Any] | None = None) -> None:
    sets = _option_sets(options, "backbone", name)
    own_examples = lookup(examples, "backbone", name) if isinstance(examples, Mapping) else examples
    for index, opts in enumerate(sets):
        label = f"backbone {name!r}" + (f" {opts}" if len(sets) > 1 else "")
        result = check_backbone_checks(catalog, name, opts, own_examples, report, component=label)
        if result is None:
            continue
        backbone, used = result
        checked.setdefault(name, (backbone, used, opts))
        classification_step(catalog, name, opts, used, report, component=label,  # one export per backbone
                            check_export=exports is not None and index == 0, export_queue=exports)

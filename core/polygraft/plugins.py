"""Plugin discovery and the component catalog.

:func:`build_catalog` creates a fresh pluggy manager (never a module global), registers the builtin plugin,
loads every entry point of the ``polygraft`` group, and collects each plugin's specs into strict registries.
A plugin that fails to import or register is recorded with its distribution and error; the rest still work.
Plugins load in a fixed order (core, the first-party plugins, then the rest by entry-point name), but no result
depends on it: when two plugins claim one name the registry's precedence rule decides (see
:mod:`polygraft.registry`), and the losing claim stays reachable as ``owner:name``. A hook implementation whose
name is not a polygraft hook (a typo such as ``polygraft_register_backbone``) fails its plugin loudly.

Environment:
    ``POLYGRAFT_DISABLE_PLUGINS=a,b``  skip plugins by entry-point or distribution name.
    ``POLYGRAFT_DISABLE_PLUGIN_AUTOLOAD=1``  load no entry points (builtins only).

Example:
    >>> from polygraft.plugins import build_catalog
    >>> catalog = build_catalog(autoload=False)
    >>> "toy" in catalog.registry("backbone")
    True
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from types import ModuleType
from typing import Any

import pluggy

from polygraft import hookspecs
from polygraft.errors import PluginError, PolygraftError
from polygraft.options import closest
from polygraft.registry import Registry
from polygraft.specs import SPEC_TYPES, ComponentSpec

ENTRY_POINT_GROUP = "polygraft"
BUILTIN_PLUGIN = "polygraft.builtin.plugin"
CORE_DISTRIBUTION = "polygraft"
FIRST_PARTY = frozenset({CORE_DISTRIBUTION, "polygraft-text", "polygraft-vision", "polygraft-speech"})


@dataclass
class PluginInfo:
    """One plugin as ``polygraft plugins`` shows it."""

    name: str
    distribution: str
    version: str
    status: str = "ok"  # ok | failed | disabled
    error: str | None = None
    counts: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # contested names, nothing registered...

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "distribution": self.distribution,
            "version": self.version,
            "status": self.status,
            "error": self.error,
            "counts": dict(self.counts),
            "notes": list(self.notes),
        }


def check_plugin_api(module: ModuleType | object, distribution: str) -> None:
    """A plugin that declares ``POLYGRAFT_PLUGIN_API`` must declare one this polygraft supports."""
    from polygraft.version import PLUGIN_API, SUPPORTED_PLUGIN_APIS, __version__

    declared = getattr(module, "POLYGRAFT_PLUGIN_API", None)
    if declared is None or declared in SUPPORTED_PLUGIN_APIS:
        return
    newer = isinstance(declared, int) and declared > PLUGIN_API
    raise PluginError(
        f"{distribution} is written for polygraft plugin API {declared!r}, and polygraft {__version__} supports "
        f"{', '.join(map(str, SUPPORTED_PLUGIN_APIS))}; "
        + ("upgrade polygraft (CHANGELOG.md says what each API version changed)" if newer else
           "install a version of the plugin written for this polygraft, or set POLYGRAFT_PLUGIN_API to an integer")
    )


def _env_list(name: str) -> set[str]:
    return {part.strip() for part in os.environ.get(name, "").split(",") if part.strip()}


def _core_version() -> str:
    from polygraft.version import __version__

    return __version__


def get_plugin_manager() -> pluggy.PluginManager:
    """A new, empty plugin manager with polygraft's hookspecs (one per application object)."""
    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    return pm


def check_hook_names(module: object, pm: pluggy.PluginManager) -> None:
    """Fail loudly on ``polygraft_*`` functions that are no polygraft hook or lack ``@hookimpl``."""
    known = list(hookspecs.COLLECTING_HOOKS)
    for attribute in dir(module):
        if not attribute.startswith("polygraft_") or not callable(getattr(module, attribute, None)):
            continue
        marked = pm.parse_hookimpl_opts(module, attribute) is not None
        if attribute not in known:
            near = closest(attribute, known, n=1)
            hint = f"; did you mean {near[0]!r}?" if near else f"; hooks are {', '.join(known)}"
            raise PluginError(f"{attribute!r} is not a polygraft hook{hint}")
        if not marked:
            raise PluginError(f"{attribute!r} is not marked with @polygraft.hookimpl, so it would never be called")


class Catalog:
    """The plugin manager, the registries it filled and what happened to each plugin."""

    def __init__(self, pm: pluggy.PluginManager) -> None:
        self.pm = pm
        self.registries: dict[str, Registry] = {kind: Registry(kind, first_party=FIRST_PARTY)
                                                for kind in SPEC_TYPES}
        self.plugins: list[PluginInfo] = []

    def registry(self, kind: str) -> Registry:
        """The registry of one component kind (``backbone``, ``task``...)."""
        return self.registries[kind]

    def get(self, kind: str, name: str) -> ComponentSpec:
        """Shorthand for ``catalog.registry(kind).get(name)``."""
        return self.registries[kind].get(name)

    def add_plugin(self, module: ModuleType | object, *, name: str, distribution: str, version: str) -> PluginInfo:
        """Register one plugin object and collect its specs; failures are recorded, not raised."""
        info = PluginInfo(name=name, distribution=distribution, version=version)
        self.plugins.append(info)
        try:
            check_plugin_api(module, distribution)
            check_hook_names(module, self.pm)
            self.pm.register(module, name=name)
            try:
                self.pm.check_pending()
            except pluggy.PluginValidationError as exc:  # @hookimpl on a name that is no polygraft hook
                raise PluginError(f"{exc}; polygraft's hooks are {', '.join(hookspecs.COLLECTING_HOOKS)}") from None
            staged = self._collect(name)
            self._commit(staged, owner=distribution)
        except Exception as exc:  # one broken plugin must not brick the host
            self._mark_failed(info, exc)
            if self.pm.is_registered(module):
                self.pm.unregister(module)
            return info
        for _, spec, _ in staged:
            info.counts[spec.kind] = info.counts.get(spec.kind, 0) + 1
        if not staged:
            info.notes.append("registered nothing (check the hook names and that each calls register)")
        return info

    def add_failed(self, *, name: str, distribution: str, version: str, error: BaseException) -> None:
        info = PluginInfo(name=name, distribution=distribution, version=version)
        self.plugins.append(info)
        self._mark_failed(info, error)

    def _mark_failed(self, info: PluginInfo, exc: BaseException) -> None:
        info.status = "failed"
        info.error = f"{type(exc).__name__}: {exc}"
        for registry in self.registries.values():
            registry.unavailable_plugins[f"{info.distribution} ({info.name})"] = info.error

    def _collect(self, plugin_name: str) -> list[tuple[str, ComponentSpec, bool]]:
        staged: list[tuple[str, ComponentSpec, bool]] = []
        for hook_name, kind in hookspecs.COLLECTING_HOOKS.items():
            caller = getattr(self.pm.hook, hook_name)
            for impl in caller.get_hookimpls():
                if impl.plugin_name != plugin_name:
                    continue

                def register(spec: ComponentSpec, *, replace: bool = False, _kind: str = kind) -> None:
                    staged.append((_kind, spec, replace))

                impl.function(register=register)
        return staged

    def _commit(self, staged: Sequence[tuple[str, ComponentSpec, bool]], *, owner: str) -> None:
        try:
            for kind, spec, replace in staged:
                self.registries[kind].register(spec, owner=owner, replace=replace)
        except PolygraftError:
            for registry in self.registries.values():  # all or nothing per plugin
                registry.unregister_owner(owner)
            raise

    def note_contested(self) -> None:
        """Tell each plugin involved in a name clash who else claims the name and how to pick one."""
        by_distribution = {info.distribution: info for info in self.plugins if info.status == "ok"}
        for kind, registry in self.registries.items():
            for name, claims in registry.contested().items():
                try:
                    winner = registry.entry(name).owner
                    outcome = f"'{name}' means {winner}'s"
                except PolygraftError:
                    outcome = f"'{name}' alone is ambiguous"
                qualified = ", ".join(claim.qualified_name for claim in claims)
                for claim in claims:
                    info = by_distribution.get(claim.owner)
                    if info is not None:
                        info.notes.append(f"{kind} {name!r} is also claimed by "
                                          f"{', '.join(c.owner for c in claims if c.owner != claim.owner)}; "
                                          f"{outcome}; pick one explicitly with {qualified}")

    def note_undeclared_modalities(self) -> None:
        """A component naming a modality no installed plugin declares gets a note on its plugin."""
        declared = set(self.registries["modality"].names())
        by_distribution = {info.distribution: info for info in self.plugins if info.status == "ok"}
        for kind, registry in self.registries.items():
            for entry in registry.all_entries():
                info = by_distribution.get(entry.owner)
                if kind != "modality" and entry.spec.modality not in declared and info is not None:
                    info.notes.append(f"{kind} {entry.spec.name!r} names modality {entry.spec.modality!r}, which no "
                                      "installed plugin declares (register it with polygraft_register_modalities)")

    def failed_plugins(self) -> list[PluginInfo]:
        return [info for info in self.plugins if info.status == "failed"]


def _entry_point_distribution(ep: EntryPoint) -> tuple[str, str]:
    dist = getattr(ep, "dist", None)
    if dist is None:
        return ep.name, "unknown"
    return dist.metadata["Name"] or ep.name, dist.version


def _load_order(ep: EntryPoint) -> tuple[int, str]:
    distribution, _ = _entry_point_distribution(ep)
    return (0 if distribution in FIRST_PARTY else 1, ep.name)


def build_catalog(
    *,
    autoload: bool | None = None,
    disabled: Iterable[str] | None = None,
    plugins: Iterable[tuple[str, object]] = (),
) -> Catalog:
    """Discover plugins and fill fresh registries.

    Args:
        autoload: load ``polygraft`` entry points; default: unless POLYGRAFT_DISABLE_PLUGIN_AUTOLOAD is set.
        disabled: plugin or distribution names to skip; default: POLYGRAFT_DISABLE_PLUGINS.
        plugins: extra ``(name, module_or_object)`` plugins to register (tests, embedding applications); the
            distribution is the name, or ``(name, module, distribution)`` to say which.
    """
    if autoload is None:
        autoload = os.environ.get("POLYGRAFT_DISABLE_PLUGIN_AUTOLOAD", "") in ("", "0")
    skip = set(disabled) if disabled is not None else _env_list("POLYGRAFT_DISABLE_PLUGINS")
    catalog = Catalog(get_plugin_manager())
    builtin = importlib.import_module(BUILTIN_PLUGIN)
    catalog.add_plugin(builtin, name="polygraft", distribution=CORE_DISTRIBUTION, version=_core_version())
    if autoload:
        for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=_load_order):
            distribution, version = _entry_point_distribution(ep)
            if ep.name in skip or distribution in skip:
                catalog.plugins.append(PluginInfo(ep.name, distribution, version, status="disabled"))
                continue
            try:
                module = ep.load()
            except Exception as exc:
                catalog.add_failed(name=ep.name, distribution=distribution, version=version, error=exc)
                continue
            catalog.add_plugin(module, name=ep.name, distribution=distribution, version=version)
    for item in plugins:
        name, module, *rest = item  # type: ignore[misc,var-annotated]
        distribution = rest[0] if rest else name
        catalog.add_plugin(module, name=name, distribution=distribution, version="local")
    catalog.note_contested()
    catalog.note_undeclared_modalities()
    return catalog

"""Plugin discovery and the component catalog.

:func:`build_catalog` creates a fresh pluggy manager (never a module global), registers the builtin plugin,
loads every entry point of the ``polygraft`` group, and collects each plugin's specs into strict registries.
A plugin that fails to import or register is recorded with its distribution and error; the rest still work.

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
from polygraft.errors import PolygraftError
from polygraft.registry import Registry
from polygraft.specs import SPEC_TYPES, ComponentSpec

ENTRY_POINT_GROUP = "polygraft"
BUILTIN_PLUGIN = "polygraft.builtin.plugin"
CORE_DISTRIBUTION = "polygraft"


@dataclass
class PluginInfo:
    """One plugin as ``polygraft plugins`` shows it."""

    name: str
    distribution: str
    version: str
    status: str = "ok"  # ok | failed | disabled
    error: str | None = None
    counts: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "distribution": self.distribution,
            "version": self.version,
            "status": self.status,
            "error": self.error,
            "counts": dict(self.counts),
        }


def _env_list(name: str) -> set[str]:
    return {part.strip() for part in os.environ.get(name, "").split(",") if part.strip()}


def _core_version() -> str:
    from polygraft import __version__

    return __version__


def get_plugin_manager() -> pluggy.PluginManager:
    """A new, empty plugin manager with polygraft's hookspecs (one per application object)."""
    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    return pm


class Catalog:
    """The plugin manager, the registries it filled and what happened to each plugin."""

    def __init__(self, pm: pluggy.PluginManager) -> None:
        self.pm = pm
        self.registries: dict[str, Registry] = {kind: Registry(kind) for kind in SPEC_TYPES}
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
            self.pm.register(module, name=name)
            staged = self._collect(name)
            self._commit(staged, owner=distribution)
        except Exception as exc:  # one broken plugin must not brick the host
            self._mark_failed(info, exc)
            if self.pm.is_registered(module):
                self.pm.unregister(module)
            return info
        for _, spec, _ in staged:
            info.counts[spec.kind] = info.counts.get(spec.kind, 0) + 1
        return info

    def add_failed(self, *, name: str, distribution: str, version: str, error: BaseException) -> None:
        info = PluginInfo(name=name, distribution=distribution, version=version)
        self.plugins.append(info)
        self._mark_failed(info, error)

    def _mark_failed(self, info: PluginInfo, exc: BaseException) -> None:
        info.status = "failed"
        info.error = f"{type(exc).__name__}: {exc}"
        for registry in self.registries.values():
            registry.unavailable_plugins[info.distribution] = info.error

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
        done: list[tuple[str, str]] = []
        try:
            for kind, spec, replace in staged:
                self.registries[kind].register(spec, owner=owner, replace=replace)
                done.append((kind, spec.name))
        except PolygraftError:
            for kind, spec_name in done:  # all or nothing per plugin
                self.registries[kind].unregister(spec_name)
            raise


def _entry_point_distribution(ep: EntryPoint) -> tuple[str, str]:
    dist = getattr(ep, "dist", None)
    if dist is None:
        return ep.name, "unknown"
    return dist.metadata["Name"] or ep.name, dist.version


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
        plugins: extra ``(name, module_or_object)`` plugins to register (tests, embedding applications).
    """
    if autoload is None:
        autoload = os.environ.get("POLYGRAFT_DISABLE_PLUGIN_AUTOLOAD", "") in ("", "0")
    skip = set(disabled) if disabled is not None else _env_list("POLYGRAFT_DISABLE_PLUGINS")
    catalog = Catalog(get_plugin_manager())
    builtin = importlib.import_module(BUILTIN_PLUGIN)
    catalog.add_plugin(builtin, name="polygraft", distribution=CORE_DISTRIBUTION, version=_core_version())
    if autoload:
        for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
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
    for name, module in plugins:
        catalog.add_plugin(module, name=name, distribution=name, version="local")
    return catalog

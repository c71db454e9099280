"""Can a ``"module:function"`` factory be imported? Answered without importing it (no torch, no plugin code).

The module is located with :mod:`importlib` finders (parents are not imported), its source is parsed with
:mod:`ast`, and every unconditional top-level import is located the same way. Imports inside ``try``/``if``
blocks (optional dependencies, ``TYPE_CHECKING``) and inside functions are not checked, so nothing is reported
that would not fail for certain. ``polygraft plugins``, ``polygraft list``, ``polygraft doctor`` and the
conformance kit use it to flag a component whose factory cannot load before anyone tries to use it.

Example:
    >>> from polygraft.importcheck import factory_problem
    >>> factory_problem("polygraft.builtin.toy:create_toy_backbone") is None
    True
    >>> factory_problem("polygraft.builtin.toy:create_toy")
    "module 'polygraft.builtin.toy' defines no 'create_toy'; check the spec's factory string"
"""

from __future__ import annotations

import ast
import functools
import importlib.util
import sys
from collections.abc import Collection
from dataclasses import dataclass
from importlib.machinery import ModuleSpec, PathFinder
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from polygraft.plugins import Catalog


@dataclass(frozen=True)
class FactoryProblem:
    """A registered component whose factory cannot be imported."""

    kind: str
    name: str
    owner: str
    factory: str
    problem: str

    def __str__(self) -> str:
        return f"{self.kind} {self.name!r} ({self.owner}) cannot be created: {self.problem}"


def locate(module_name: str) -> ModuleSpec | None:
    """The module's spec, found without importing it or its parent packages; ``None`` when it does not exist."""
    return _locate(module_name, tuple(sys.path))


@functools.lru_cache(maxsize=1024)
def _locate(module_name: str, path: tuple[str, ...]) -> ModuleSpec | None:
    if module_name in sys.modules:
        return getattr(sys.modules[module_name], "__spec__", None) or ModuleSpec(module_name, None)
    parts = module_name.split(".")
    try:
        spec = importlib.util.find_spec(parts[0])
    except (ImportError, ValueError):
        return None
    for index in range(1, len(parts)):
        if spec is None or spec.submodule_search_locations is None:
            return None
        spec = PathFinder.find_spec(".".join(parts[: index + 1]), list(spec.submodule_search_locations))
    return spec


@functools.lru_cache(maxsize=256)
def _parse(path: str, mtime: float) -> ast.Module | None:
    try:
        return ast.parse(Path(path).read_text(encoding="utf-8"), filename=path)
    except (OSError, SyntaxError, UnicodeDecodeError, ValueError):
        return None


def _tree(spec: ModuleSpec) -> ast.Module | None:
    origin = spec.origin
    if not origin or not origin.endswith(".py") or not Path(origin).is_file():
        return None
    return _parse(origin, Path(origin).stat().st_mtime)


def _imported_modules(tree: ast.Module, package: str) -> list[str]:
    """Modules imported unconditionally at module level (relative imports resolved against ``package``)."""
    names: list[str] = []
    for node in tree.body:
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                if node.level > 1:
                    base = base[: len(base) - node.level + 1]
                prefix = ".".join(base)
                if node.module:
                    names.append(f"{prefix}.{node.module}" if prefix else node.module)
                else:  # from . import sibling: each name may be a submodule or an attribute
                    continue
            elif node.module and node.module != "__future__":
                names.append(node.module)
    return names


def _defined_names(body: list[ast.stmt]) -> set[str] | None:
    """Top-level names a module defines (conditional ones included); ``None`` when it cannot be told
    (a module ``__getattr__``, a star import)."""
    names: set[str] = set()
    for node in body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            if node.name == "__getattr__":
                return None
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                names.update(n.id for n in ast.walk(target) if isinstance(n, ast.Name))
        elif isinstance(node, ast.AnnAssign | ast.AugAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            for alias in node.names:
                if alias.name == "*":
                    return None
                names.add(alias.asname or alias.name.split(".")[0])
        elif isinstance(node, ast.If | ast.Try | ast.With | ast.For | ast.While):
            blocks = [node.body, getattr(node, "orelse", []), getattr(node, "finalbody", [])]
            blocks += [handler.body for handler in getattr(node, "handlers", [])]
            for block in blocks:
                inner = _defined_names(block)
                if inner is None:
                    return None
                names |= inner
    return names


def module_problem(module_name: str) -> str | None:
    """Why ``module_name`` cannot be imported (missing, or a missing top-level import), else ``None``."""
    spec = locate(module_name)
    if spec is None:
        return f"module {module_name!r} does not exist; check the spec's factory string and that the package is installed"
    tree = _tree(spec)
    if tree is None:
        return None
    package = module_name if spec.submodule_search_locations is not None else module_name.rpartition(".")[0]
    for imported in _imported_modules(tree, package):
        if locate(imported) is None:
            top = imported.split(".")[0]
            if locate(top) is None:
                return (f"module {module_name!r} imports {imported!r}, which is not installed: install it and list "
                        "it in your pyproject's dependencies, or import it inside the function that needs it")
            return f"module {module_name!r} imports {imported!r}, which does not exist"
    return None


def factory_problem(factory: str) -> str | None:
    """Why the ``"module:attribute"`` factory cannot be loaded, found without importing it; ``None`` if it looks fine."""
    module_name, _, attribute = factory.partition(":")
    if not module_name or not attribute:
        return f"factory must be a 'module:function' string, got {factory!r}"
    problem = module_problem(module_name)
    if problem is not None:
        return problem
    spec = locate(module_name)
    tree = _tree(spec) if spec is not None else None
    if tree is not None:
        defined = _defined_names(tree.body)
        first = attribute.split(".")[0]
        if defined is not None and first not in defined:
            return f"module {module_name!r} defines no {first!r}; check the spec's factory string"
    return None


def factory_problems(catalog: Catalog, *, owners: Collection[str] | None = None,
                     kinds: Collection[str] | None = None) -> list[FactoryProblem]:
    """Every registered component (of the given plugins and kinds, or all) whose factory cannot be imported."""
    found: list[FactoryProblem] = []
    for kind, registry in catalog.registries.items():
        if kind == "modality" or (kinds is not None and kind not in kinds):
            continue
        for entry in registry.all_entries():
            if owners is not None and entry.owner not in owners:
                continue
            problem = factory_problem(entry.spec.factory)
            if problem is not None:
                found.append(FactoryProblem(kind, entry.spec.name, entry.owner, entry.spec.factory, problem))
    return found

"""The layering rule of core and plugins, written here once and enforced by an ``ast`` walk over every import.

Core's modules sit in seven layers; a module may import its own layer and the layers below it, never above. The
rule is the same for module-level, function-local and ``TYPE_CHECKING`` imports, so no import circle can hide
behind laziness. Components (L2) and the input pipeline (L3) are siblings: neither imports the other.

| layer | modules | may import |
|---|---|---|
| L0 vocabulary | errors features specs options assets fingerprint run plots version safe_yaml paths | L0 |
| L1 contracts and catalog | interfaces/ hookspecs registry plugins components model_io | L0, L1 |
| L2 components | tasks/ finetune/ builtin/ fusion/ | L0, L1, L2 |
| L3 inputs | inputs/ | L0, L1, L3 |
| L4 engine | training/ | L0 to L4 |
| L5 composition | api recipe | L0 to L5 |
| L6 applications | the CLI, compare, doctor, the plugin kit, export, serve, explain... and the package itself | all |

Plugins (``plugins/*/polygraft_*``, the example tabular plugin) import only L0, L1 and the top-level API
(``import polygraft``, ``from polygraft import create_backbone``), never core's components, engine or applications.
A new core module must be given a layer here (the test says so).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CORE = ROOT / "core" / "polygraft"

LAYERS: dict[str, int] = {
    **dict.fromkeys(["errors", "features", "specs", "options", "assets", "fingerprint", "run", "plots",
                     "version", "safe_yaml", "paths"], 0),
    **dict.fromkeys(["interfaces", "hookspecs", "registry", "plugins", "components", "model_io"], 1),
    **dict.fromkeys(["tasks", "finetune", "builtin", "fusion"], 2),
    "inputs": 3,
    "training": 4,
    **dict.fromkeys(["api", "recipe"], 5),
    **dict.fromkeys(["__init__", "__main__", "cli", "cli_run", "compare", "compare_report", "doctor", "importcheck",
                     "scaffold", "scaffold_data", "conformance", "testing", "templates", "recipe_reference",
                     "compare_child"], 6),
}
"""First part of a module's name under ``polygraft`` → its layer (prefix matches: cli_export → cli_*)."""

APPLICATION_PREFIXES = ("cli_", "export", "serve", "explain", "tune", "recommend", "shard")
"""New application modules and packages (L6) are recognised by these prefixes."""

SIBLINGS = {frozenset({2, 3})}
"""Layers that may not import each other although neither is above the other."""

PLUGIN_ALLOWED = 1
"""Plugins import core's layers up to this one, plus the top-level ``polygraft`` package."""


def layer_of(module: str) -> int | None:
    """The layer of a dotted module name inside core (``polygraft.inputs.cache.plan`` → 3); None when unknown."""
    parts = module.split(".")
    if parts[0] != "polygraft":
        return None
    if len(parts) == 1:
        return LAYERS["__init__"]
    head = parts[1]
    if head in LAYERS:
        return LAYERS[head]
    if head.startswith(APPLICATION_PREFIXES):
        return 6
    return None


def imports_of(path: Path, module: str) -> Iterator[tuple[str, int]]:
    """Every ``polygraft`` module ``path`` imports (absolute or relative), with its line: module level,
    function-local and ``TYPE_CHECKING`` alike."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package[: len(package) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            if base != "polygraft":
                yield base, node.lineno
                continue
            for alias in node.names:  # from polygraft import hookspecs (a module) or __version__ (the package's)
                candidate = f"polygraft.{alias.name}"
                yield (candidate if layer_of(candidate) is not None else "polygraft"), node.lineno


def shown(path: Path) -> str:
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


def module_name(path: Path, root: Path, package: str) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join([package, *parts])


def core_violations(root: Path = CORE) -> list[str]:
    """Every import in core that breaks the rule, and every module without a layer."""
    problems: list[str] = []
    for path in sorted(root.rglob("*.py")):
        module = module_name(path, root, "polygraft")
        own = layer_of(module) if module != "polygraft" else LAYERS["__init__"]
        if own is None:
            problems.append(f"{shown(path)}: module {module} has no layer; add it to LAYERS in "
                            "tests/test_layers.py")
            continue
        for target, line in imports_of(path, module):
            other = layer_of(target)
            if other is None or target.split(".")[:2] == module.split(".")[:2]:
                continue
            if other > own or (other != own and frozenset({own, other}) in SIBLINGS):
                problems.append(f"{shown(path)}:{line}: {module} (L{own}) imports {target} (L{other})")
    return problems


def plugin_violations(root: Path, package: str) -> list[str]:
    """Imports of core from a plugin package that go past the bottom layers and the top-level API."""
    problems = []
    for path in sorted(root.rglob("*.py")):
        module = module_name(path, root, package)
        for target, line in dict(imports_of(path, module)).items():
            if not target.startswith("polygraft.") or target.startswith(f"{package}."):
                continue  # the top-level API (import polygraft), another library, or the plugin itself
            other = layer_of(target)
            if other is None and target.count(".") == 1:
                continue  # a name of the top-level API: from polygraft import create_backbone
            if other is not None and other <= PLUGIN_ALLOWED:
                continue
            problems.append(f"{shown(path)}:{line}: plugin module {module} imports {target} (L{other}); plugins "
                            "use polygraft.interfaces, the bottom layer and the top-level API")
    return problems


def plugin_packages() -> list[tuple[Path, str]]:
    found = [(path, path.name) for path in sorted(ROOT.glob("plugins/*/polygraft_*")) if path.is_dir()]
    found += [(path, path.name) for path in sorted(ROOT.glob("examples/plugins/*/polygraft_*")) if path.is_dir()]
    return found


def test_core_respects_the_layers() -> None:
    assert core_violations() == []


@pytest.mark.parametrize(("root", "package"), plugin_packages(), ids=lambda value: str(value))
def test_plugins_import_only_the_contract(root: Path, package: str) -> None:
    assert plugin_violations(root, package) == []


def test_the_checker_catches_a_broken_rule(tmp_path: Path) -> None:
    """The rule fails when it is broken: an upward import (even function-local or type-only), a sibling import,
    a module without a layer, and a plugin reaching into the engine."""
    core = tmp_path / "polygraft"
    (core / "interfaces").mkdir(parents=True)
    (core / "tasks").mkdir()
    (core / "interfaces" / "__init__.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from polygraft.training.trainer import Trainer\n")
    (core / "tasks" / "__init__.py").write_text("def f():\n    from ..inputs import loaders\n")
    (core / "features.py").write_text("import polygraft.errors\n")
    (core / "mystery.py").write_text("")
    problems = core_violations(core)
    assert any("interfaces (L1) imports polygraft.training.trainer (L4)" in p for p in problems)
    assert any("tasks (L2) imports polygraft.inputs" in p for p in problems)
    assert any("polygraft.mystery has no layer" in p for p in problems)
    assert not any("features" in p for p in problems)

    plugin = tmp_path / "polygraft_demo"
    plugin.mkdir()
    (plugin / "backbone.py").write_text("import polygraft\nfrom polygraft.interfaces import Backbone\n"
                                        "from polygraft.training.trainer import Trainer\n")
    problems = plugin_violations(plugin, "polygraft_demo")
    assert len(problems) == 1 and "polygraft.training.trainer (L4)" in problems[0]

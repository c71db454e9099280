"""Every hook has a section in docs/hooks.md and is exercised by a test."""

from __future__ import annotations

from pathlib import Path

import pytest

from polygraft import hookspecs

ROOT = Path(__file__).resolve().parents[1]
HOOKS = sorted(name for name in dir(hookspecs) if name.startswith("polygraft_"))
TEST_SOURCES = [p for folder in ("tests", "plugins") for p in (ROOT / folder).rglob("*.py")]
PLUGIN_SOURCES = [p for p in (ROOT / "core" / "polygraft").rglob("plugin.py")] + list(
    (ROOT / "plugins").rglob("plugin.py"))


def test_every_collecting_hook_is_listed() -> None:
    assert sorted(hookspecs.COLLECTING_HOOKS) == HOOKS


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_has_a_documentation_section(hook: str) -> None:
    assert f"## {hook}\n" in (ROOT / "docs" / "hooks.md").read_text(), f"add a '## {hook}' section to docs/hooks.md"


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_is_implemented_and_exercised(hook: str) -> None:
    used = [p for p in TEST_SOURCES + PLUGIN_SOURCES if hook in p.read_text()]
    assert used, f"no plugin or test implements {hook}"
    kind = hookspecs.COLLECTING_HOOKS[hook]
    from polygraft.plugins import build_catalog

    catalog = build_catalog()
    assert len(catalog.registry(kind)) > 0, f"no installed plugin registers any {kind} through {hook}"

"""Every recipe under examples/ parses and names components that the installed plugins register."""

from __future__ import annotations

from pathlib import Path

import pytest

from polygraft.plugins import build_catalog
from polygraft.recipe import Recipe

RECIPES = sorted((Path(__file__).resolve().parents[1] / "examples").glob("*/*.yaml"))


def test_there_are_recipes_for_every_plugin_with_examples() -> None:
    assert {path.parent.name for path in RECIPES} >= {"text", "vision"}


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_recipe_parses_and_its_components_exist(path: Path) -> None:
    config = Recipe.from_yaml(path)
    catalog = build_catalog()
    assert all(p.status == "ok" for p in catalog.plugins), catalog.plugins
    catalog.get("backbone", config.backbone)
    catalog.get("task" if config.task else "objective", config.task or config.objective)
    for split in config.data.values():
        catalog.get("dataset", split["dataset"])
    for item in config.strategy:
        catalog.get("strategy", item if isinstance(item, str) else item["name"])

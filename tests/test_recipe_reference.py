"""docs/recipes.md is generated from the typed configs: it lists every recipe key and trainer option, and a change
to a config that is not regenerated into the page fails here."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from polygraft.recipe import KEY_DOCS, Recipe
from polygraft.recipe_reference import render
from polygraft.training.config import OPTION_DOCS, TrainerConfig

PAGE = Path(__file__).resolve().parents[1] / "docs" / "recipes.md"


def test_every_key_has_a_meaning() -> None:
    assert {f.name for f in dataclasses.fields(Recipe)} - {"source"} == set(KEY_DOCS)
    assert {f.name for f in dataclasses.fields(TrainerConfig)} == set(OPTION_DOCS)


def test_the_page_is_up_to_date() -> None:
    assert PAGE.read_text() == render(), "regenerate it: python -m polygraft.recipe_reference > docs/recipes.md"

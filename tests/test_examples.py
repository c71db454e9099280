"""Examples never rot: every recipe under examples/ trains for two steps at tiny sizes (examples/smoke.yaml), and
every variant of every comparison file resolves to a valid recipe, so a renamed option breaks CI, not a user."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from polygraft.compare import plan_variants, read_variant_file
from polygraft.plugins import build_catalog
from polygraft.recipe import Recipe, check_recipe, run_recipe

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SMOKE = yaml.safe_load((EXAMPLES / "smoke.yaml").read_text())
FILES = sorted(p for p in EXAMPLES.glob("*/*.yaml"))
COMPARISONS = [p for p in FILES if "variants" in (yaml.safe_load(p.read_text()) or {})]
RECIPES = [p for p in FILES if p not in COMPARISONS]


def name(path: Path) -> str:
    return f"{path.parent.name}/{path.name}"


def smoke_overrides(path: Path) -> list[str]:
    """``all`` + the options of each dataset the recipe uses + the recipe's own smoke overrides."""
    raw: dict[str, Any] = yaml.safe_load(path.read_text())
    overrides = list(SMOKE["all"])
    for split, ref in (raw.get("data") or {}).items():
        for key, value in (SMOKE["datasets"].get(ref.get("dataset"), {}) or {}).items():
            overrides.append(f"data.{split}.{key}={yaml.safe_dump(value, default_flow_style=True).strip()}")
    return overrides + list(SMOKE["recipes"][name(path)])


@pytest.fixture(scope="module", autouse=True)
def private_cache(tmp_path_factory: pytest.TempPathFactory) -> Any:
    patch = pytest.MonkeyPatch()
    patch.setenv("POLYGRAFT_CACHE", str(tmp_path_factory.mktemp("cache")))  # generated data stays in the test
    yield
    patch.undo()


def test_every_recipe_has_a_smoke_entry_and_every_modality_has_recipes() -> None:
    assert {name(p) for p in RECIPES} == set(SMOKE["recipes"])
    assert {p.parent.name for p in RECIPES} >= {"text", "vision", "speech"}
    assert COMPARISONS, "examples/cross_domain holds the comparison files"


@pytest.mark.parametrize("path", RECIPES, ids=name)
def test_recipe_trains_two_steps_at_tiny_size(path: Path, tmp_path: Path) -> None:
    recipe = Recipe.from_yaml(path, [*smoke_overrides(path), f"output_dir={tmp_path / 'run'}"])
    result = run_recipe(recipe)
    assert result.stop_reason == "finished"
    results = yaml.safe_load((tmp_path / "run" / "results.json").read_text())
    assert results["train/steps"] == 2 and (tmp_path / "run" / "model" / "model.safetensors").is_file()


@pytest.mark.parametrize("path", COMPARISONS, ids=name)
def test_every_comparison_variant_is_a_valid_recipe(path: Path) -> None:
    recipes, named, seeds = read_variant_file(path)
    catalog = build_catalog()
    variants = plan_variants(recipes, named=named)
    assert variants and all(isinstance(seed, int) for seed in seeds or [0])
    for variant in variants:
        recipe_path = Path(variant.recipe).resolve()
        assert recipe_path in {p.resolve() for p in RECIPES}, f"{variant.name} uses {variant.recipe}, not an example"
        recipe = Recipe.from_yaml(recipe_path, [*smoke_overrides(recipe_path), *variant.overrides])
        check_recipe(recipe, catalog)

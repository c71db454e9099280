"""``docs/recipes.md``: every recipe key and trainer option with its type, default and meaning, generated from the
typed configs (``Recipe``, ``TrainerConfig``) so the page never drifts (a test compares it).

Regenerate it with ``python -m polygraft.recipe_reference > docs/recipes.md``.

Example:
    >>> from polygraft.recipe_reference import render
    >>> "| `trainer.lr` | float | `0.001` |" in render()
    True
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

HEADER = """# Recipe reference

A recipe is YAML (read with `safe_load`) describing one run; `polygraft finetune RECIPE key.sub=value ...` overrides
any key (the value is parsed as YAML). Unknown keys are refused with the closest valid one, and every option is
checked against its type before anything is built. Component options (`backbone_options`, `task_options`,
`objective_options`, a dataset's options) belong to the component: `polygraft list backbones` and the component's
documentation list them. This page is generated from the typed configs by `python -m polygraft.recipe_reference`.

```yaml
task: classification
backbone: bert
weights: minilm-l6
backbone_options: {max_length: 64, pooling: mean}
data:
  common: {dataset: rotten-tomatoes, train_size: 2000, test_size: 1000, seed: 0}
  train: {}
  val: {}
trainer: {max_epochs: 2, lr: 5.0e-5, batch_size: 32}
output_dir: runs/sentiment
```
"""


def _type(annotation: Any) -> str:
    return str(annotation).replace("typing.", "").replace("NoneType", "None").replace(" | ", " or ")


def _default(spec: dataclasses.Field[Any]) -> str:
    if spec.default is not dataclasses.MISSING:
        return f"`{json.dumps(spec.default)}`"
    if spec.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        value = spec.default_factory()  # type: ignore[misc]
        return "see below" if dataclasses.is_dataclass(value) else f"`{json.dumps(value)}`"
    return "required"


def _rows(cls: Any, docs: dict[str, str], prefix: str, skip: tuple[str, ...] = ()) -> list[str]:
    rows = []
    for spec in dataclasses.fields(cls):
        if spec.name in skip:
            continue
        rows.append(f"| `{prefix}{spec.name}` | {_type(spec.type)} | {_default(spec)} | {docs[spec.name]} |")
    return rows


def render() -> str:
    """The page, as markdown."""
    from polygraft.recipe import KEY_DOCS, Recipe
    from polygraft.training.config import OPTION_DOCS, TrainerConfig

    table = ["| key | type | default | meaning |", "|---|---|---|---|"]
    lines = [HEADER, "## Top-level keys", "", *table, *_rows(Recipe, KEY_DOCS, "", skip=("source",)), "",
             "## `trainer:`", "", *table, *_rows(TrainerConfig, OPTION_DOCS, "trainer."), ""]
    return "\n".join(lines)


if __name__ == "__main__":
    print(render(), end="")

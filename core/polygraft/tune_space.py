"""``polygraft tune --space KEY=SPEC``: the search space, parsed and checked against the recipe before any trial.

A space entry names a recipe key (dotted, as an override: ``trainer.lr``, ``task_options.dropout``,
``backbone_options.hidden``, ``data.train.size``, ``strategy``, ``weights``) and what to try:

| spec | meaning |
|---|---|
| ``loguniform:LOW:HIGH`` | a float, uniform in log space (learning rates, weight decay): ``0 < LOW < HIGH`` |
| ``uniform:LOW:HIGH`` | a float, uniform: ``LOW < HIGH`` |
| ``int:LOW:HIGH[:STEP]`` / ``logint:LOW:HIGH`` | an integer, both ends included |
| ``V1,V2,...`` | one of these values, each read as YAML (``full,lora``, ``64,128``, ``null,minilm-l6``) |

Before the first trial every key must be one the recipe accepts and both ends of every range (every value of a
list) must make a valid recipe; otherwise a :class:`~polygraft.errors.ConfigError` lists the valid keys or says
which bound is impossible. The grid sampler needs finite values: a range becomes ``grid_points`` values (spaced in
log space for ``loguniform``/``logint``).

Example:
    >>> from polygraft.tune_space import parse_space
    >>> space = parse_space(["trainer.lr=loguniform:1e-4:1e-1", "strategy=full,linear-probe"])
    >>> space[0].kind, space[0].low, space[1].choices
    ('loguniform', 0.0001, ['full', 'linear-probe'])
    >>> space[0].grid(3)
    [0.0001, 0.0031622776601683794, 0.1]
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import yaml

from polygraft.errors import ConfigError
from polygraft.options import closest

if TYPE_CHECKING:
    from polygraft.plugins import Catalog

RANGE_KINDS = ("loguniform", "uniform", "int", "logint")


@dataclass
class Dimension:
    """One recipe key and the values to try for it."""

    key: str
    kind: str  # loguniform | uniform | int | logint | choice
    low: float = 0.0
    high: float = 0.0
    step: int = 1
    choices: list[Any] = field(default_factory=list)

    def spec(self) -> str:
        """The ``--space`` text this dimension was parsed from (normalised)."""
        if self.kind == "choice":
            return f"{self.key}=" + ",".join(_text(v) for v in self.choices)
        step = f":{self.step}" if self.kind == "int" and self.step != 1 else ""
        return f"{self.key}={self.kind}:{_number(self.low)}:{_number(self.high)}{step}"

    def ends(self) -> list[Any]:
        """The values to check against the recipe: both ends of a range, every value of a list."""
        if self.kind == "choice":
            return list(self.choices)
        if self.kind in ("int", "logint"):
            return [int(self.low), int(self.high)]
        return [float(self.low), float(self.high)]

    def grid(self, points: int) -> list[Any]:
        """``points`` values across a range (log-spaced for log kinds), or the list's values."""
        if self.kind == "choice":
            return list(self.choices)
        if points < 2:
            raise ConfigError(f"--grid-points must be at least 2 to cover {self.key}'s range, got {points}")
        fractions = [i / (points - 1) for i in range(points)]
        if self.kind in ("loguniform", "logint"):
            low, high = math.log(self.low), math.log(self.high)
            values = [math.exp(low + f * (high - low)) for f in fractions]
        else:
            values = [self.low + f * (self.high - self.low) for f in fractions]
        if self.kind in ("int", "logint"):
            ints = sorted({round(v / self.step) * self.step if self.kind == "int" else round(v)
                           for v in values})
            return [v for v in ints if self.low <= v <= self.high]
        values[0], values[-1] = float(self.low), float(self.high)  # exactly the bounds given
        return values

    def to_optuna(self) -> Any:
        """The optuna distribution (imports optuna)."""
        from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

        if self.kind == "choice":
            return CategoricalDistribution([_text(v) for v in self.choices])
        if self.kind in ("int", "logint"):
            return IntDistribution(int(self.low), int(self.high), log=self.kind == "logint",
                                   step=self.step if self.kind == "int" else 1)
        return FloatDistribution(float(self.low), float(self.high), log=self.kind == "loguniform")

    def optuna_value(self, value: Any) -> Any:
        """How optuna holds ``value`` (a list's values as their YAML text)."""
        return _text(value) if self.kind == "choice" else value

    def value_of(self, suggested: Any) -> Any:
        """The recipe value of what optuna suggested (a list's values travel as their YAML text)."""
        if self.kind == "choice":
            return next(v for v in self.choices if _text(v) == suggested)
        return suggested

    def override(self, value: Any) -> str:
        """``key=value`` for the child run."""
        return f"{self.key}={_text(value)}"


def parse_space(items: Sequence[str]) -> list[Dimension]:
    """Parse ``--space`` options (see the module docstring); bad syntax and impossible ranges are ConfigErrors."""
    if not items:
        raise ConfigError("tune needs at least one --space KEY=SPEC, e.g. --space trainer.lr=loguniform:1e-5:1e-2")
    dimensions: list[Dimension] = []
    for item in items:
        key, sep, spec = item.partition("=")
        key, spec = key.strip(), spec.strip()
        if not sep or not key or not spec:
            raise ConfigError(f"--space {item!r} must look like KEY=SPEC, e.g. trainer.lr=loguniform:1e-5:1e-2 or "
                              "strategy=full,lora")
        if any(d.key == key for d in dimensions):
            raise ConfigError(f"--space names {key!r} twice; give each key once")
        dimensions.append(_parse_one(key, spec, item))
    return dimensions


def _parse_one(key: str, spec: str, item: str) -> Dimension:
    head, _, rest = spec.partition(":")
    if head in RANGE_KINDS:
        parts = rest.split(":")
        if len(parts) not in (2, 3) or (len(parts) == 3 and head != "int"):
            raise ConfigError(f"--space {item!r}: write {head}:LOW:HIGH" + ("[:STEP]" if head == "int" else ""))
        try:
            numbers = [float(p) for p in parts]
        except ValueError:
            raise ConfigError(f"--space {item!r}: LOW and HIGH must be numbers, got {parts[:2]}") from None
        low, high = numbers[0], numbers[1]
        if not all(math.isfinite(n) for n in numbers):
            raise ConfigError(f"--space {item!r}: the bounds must be finite numbers")
        if low >= high:
            raise ConfigError(f"--space {item!r} is an impossible range: LOW ({_number(low)}) must be below HIGH "
                              f"({_number(high)})")
        if head in ("loguniform", "logint") and low <= 0:
            raise ConfigError(f"--space {item!r} is an impossible range: a log scale needs LOW > 0, got "
                              f"{_number(low)}; use uniform:{_number(low)}:{_number(high)} or a positive LOW")
        step = 1
        if head in ("int", "logint"):
            if not all(n == int(n) for n in numbers):
                raise ConfigError(f"--space {item!r}: {head} bounds and step must be whole numbers")
            step = int(numbers[2]) if len(numbers) == 3 else 1
            if step < 1 or step > high - low:
                raise ConfigError(f"--space {item!r} is an impossible range: STEP must be between 1 and "
                                  f"HIGH - LOW ({_number(high - low)}), got {step}")
        return Dimension(key, head, low, high, step)
    if head in ("log", "loguni", "float", "range", "choice", "categorical") or (":" in spec and "," not in spec):
        near = closest(head, [*RANGE_KINDS], n=1)
        hint = f"; did you mean {near[0]}:LOW:HIGH?" if near else ""
        raise ConfigError(f"--space {item!r}: unknown spec {head!r}; use {', '.join(k + ':LOW:HIGH' for k in RANGE_KINDS)} "
                          f"or a list of values V1,V2{hint}")
    from polygraft.compare import _split_values

    texts = _split_values(spec)
    try:
        choices = [yaml.safe_load(text) for text in texts]
    except yaml.YAMLError as exc:
        raise ConfigError(f"--space {item!r}: cannot read a value as YAML ({exc})") from None
    if len(choices) < 2:
        raise ConfigError(f"--space {item!r} gives one value; give at least two (V1,V2) or a range "
                          "(loguniform:LOW:HIGH), or set the value as an override (KEY=VALUE)")
    if len({_text(c) for c in choices}) != len(choices):
        raise ConfigError(f"--space {item!r} lists a value twice")
    return Dimension(key, "choice", choices=choices)


# ---------------------------------------------------------------------------------------------- the recipe
def recipe_keys(raw: dict[str, Any], catalog: Catalog) -> tuple[list[str], set[str]]:
    """The keys a space may name for this recipe (sorted, for messages) and the prefixes under which any key goes
    (a factory that takes ``**options``: the bert backbone's config values)."""
    from polygraft.options import declared_options, factory_options
    from polygraft.recipe import DATA_SPLITS, Recipe
    from polygraft.training.config import TrainerConfig

    keys = {f.name for f in dataclasses.fields(Recipe)} - {"source", "data", "trainer", "backbone_options",
                                                           "task_options", "objective_options", "output_dir",
                                                           "resume", "overwrite"}
    keys -= {"objective"} if raw.get("task") else {"task"}
    keys |= {f"trainer.{f.name}" for f in dataclasses.fields(TrainerConfig)} - {"trainer.progress"}
    open_prefixes: set[str] = set()

    def add(prefix: str, kind: str, name: Any, supplied: tuple[str, ...]) -> None:
        if not isinstance(name, str) or name not in catalog.registry(kind):
            return
        spec = catalog.get(kind, name)
        options, open_ended = factory_options(spec.load_factory(), declared_options(spec.metadata))
        keys.update(f"{prefix}.{n}" for n in options if n not in (*supplied, "catalog"))
        if open_ended:
            open_prefixes.add(prefix)

    add("backbone_options", "backbone", raw.get("backbone"), ("weights",))
    if raw.get("task"):
        add("task_options", "task", raw.get("task"), ("backbone", "label_names"))
    if raw.get("objective"):
        add("objective_options", "objective", raw.get("objective"), ("backbone",))
    data = raw.get("data") or {}
    common = data.get("common") or {}
    for split in DATA_SPLITS:
        ref = data.get(split)
        if isinstance(ref, dict):
            add(f"data.{split}", "dataset", ref.get("dataset", common.get("dataset")), ())
            keys.add(f"data.{split}.dataset")
    return sorted(keys), open_prefixes


def check_space(dimensions: Sequence[Dimension], recipe_path: str, overrides: Sequence[str], catalog: Catalog) -> None:
    """Every key is one the recipe takes, and every end of every range makes a valid recipe (see the module
    docstring): else a ConfigError that lists the valid keys or names the impossible bound."""
    from polygraft.recipe import Recipe, check_recipe
    from polygraft.safe_yaml import load_file

    raw = load_file(recipe_path) or {}
    valid, open_prefixes = recipe_keys(raw, catalog)
    for dimension in dimensions:
        key = dimension.key
        if key not in valid and not any(key.startswith(f"{p}.") for p in open_prefixes):
            near = closest(key, valid, n=3)
            hint = f" Did you mean {', '.join(near)}?" if near else ""
            raise ConfigError(f"--space names {key!r}, which the recipe {recipe_path} does not take.{hint} Valid keys: "
                              f"{', '.join(valid)}")
        if key in ("output_dir", "resume", "overwrite", "trainer.progress"):
            raise ConfigError(f"--space cannot vary {key!r}: tune sets it for every trial")
        for value in dimension.ends():
            try:
                recipe = Recipe.from_yaml(recipe_path, [*overrides, dimension.override(value)])
                check_recipe(recipe, catalog)
            except ConfigError as exc:
                what = "value" if dimension.kind == "choice" else "bound"
                raise ConfigError(f"--space {dimension.spec()} is impossible: the {what} {_text(value)} makes an "
                                  f"invalid recipe ({exc})") from None


def _number(value: float) -> str:
    return f"{value:g}"


def _text(value: Any) -> str:
    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()

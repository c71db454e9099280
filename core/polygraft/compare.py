"""``polygraft compare``: train several variants of one or more recipes and put them side by side.

Variants are the cartesian product of ``--vary key=v1,v2`` options (each value is a YAML override, ``null``
included) applied to every recipe, or named override sets from a small YAML file::

    recipes: [examples/text/sentiment.yaml]
    seeds: [0, 1]
    variants:
      pretrained: {}
      random-init: {weights: null}
      other-recipe: {recipe: examples/speech/spoken_digits.yaml}   # a variant may bring its own recipe

Each variant and seed trains in its own process (``python -m polygraft finetune|pretrain``) into
``OUTPUT/runs/<variant>-seed<k>/``, so peak memory is its own and a failing variant never stops the others. A
variant whose run directory already holds results for the same resolved recipe is read, not trained again, and an
interrupted one resumes from its last checkpoint: re-running an interrupted comparison finishes it.

Example:
    >>> from polygraft.compare import plan_variants
    >>> [v.name for v in plan_variants(["a.yaml"], vary=["strategy=full,lora", "weights=x,null"])]
    ['a.strategy=full.weights=x', 'a.strategy=full.weights=null', 'a.strategy=lora.weights=x', 'a.strategy=lora.weights=null']
"""

from __future__ import annotations

import itertools
import re
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from polygraft.compare_child import run_child
from polygraft.compare_report import Outcome, Variant
from polygraft.errors import ConfigError
from polygraft.run import RunDirectory
from polygraft.safe_yaml import load_file


def _split_values(text: str) -> list[str]:
    """``a,b,[1, 2],{x: 1}`` → the top-level comma-separated values (brackets kept together)."""
    values, depth, current = [], 0, ""
    for char in text:
        if char in "[{":
            depth += 1
        elif char in "]}":
            depth -= 1
        if char == "," and depth == 0:
            values.append(current.strip())
            current = ""
        else:
            current += char
    values.append(current.strip())
    return [value for value in values if value]


def parse_vary(option: str) -> tuple[str, list[str]]:
    """``strategy=full,lora`` → ``("strategy", ["full", "lora"])``."""
    key, sep, values = option.partition("=")
    if not sep or not key.strip() or not values.strip():
        raise ConfigError(f"--vary {option!r} must look like key=value1,value2")
    return key.strip(), _split_values(values)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.=+-]+", "_", text).strip("_")[:80]


def _pairs(overrides: dict[str, Any]) -> list[str]:
    def text(value: Any) -> str:
        return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()

    return [f"{key}={text(value)}" for key, value in overrides.items()]


def plan_variants(recipes: Sequence[str], *, vary: Sequence[str] = (), named: dict[str, dict[str, Any]] | None = None,
                  common: Sequence[str] = ()) -> list[Variant]:
    """Every recipe × every combination of ``--vary`` values, or every named override set (× every recipe,
    unless the set names its own ``recipe``)."""
    variants: list[Variant] = []
    if named:
        for label, overrides in named.items():
            overrides = dict(overrides or {})
            own = overrides.pop("recipe", None)
            for recipe in [own] if own is not None else recipes:
                prefix = f"{Path(recipe).stem}." if own is None and len(recipes) > 1 else ""
                variants.append(Variant(f"{prefix}{label}", str(recipe), (*common, *_pairs(overrides))))
    else:
        axes = [parse_vary(option) for option in vary]
        keys = [key for key, _ in axes]
        if len(set(keys)) != len(keys):
            raise ConfigError(f"--vary names a key twice: {keys}")
        for recipe in recipes:
            for combination in itertools.product(*(values for _, values in axes)) if axes else [()]:
                pairs = [f"{key}={value}" for key, value in zip(keys, combination)]
                stem = Path(recipe).stem
                variants.append(Variant(".".join([stem, *pairs]) if pairs else stem, recipe, (*common, *pairs)))
    if not variants:
        raise ConfigError("compare needs at least one recipe (or a --variants file whose variants name one)")
    names = [variant.name for variant in variants]
    if len(set(names)) != len(names):
        raise ConfigError(f"two variants would share a name: {names}")
    return variants


def read_variant_file(path: str | Path) -> tuple[list[str], dict[str, dict[str, Any]], list[int] | None]:
    """``(recipes, named variants, seeds)`` from a comparison YAML file (see the module docstring)."""
    try:
        data = load_file(path)
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read the comparison file ({exc})") from exc
    if not isinstance(data, dict) or not isinstance(data.get("variants"), dict) or "recipes" not in data:
        raise ConfigError(f"{path}: a comparison file has 'recipes: [...]' and 'variants: {{name: {{overrides}}}}'")
    unknown = set(data) - {"recipes", "variants", "seeds"}
    if unknown:
        raise ConfigError(f"{path}: unknown keys {sorted(unknown)}; use recipes, variants and seeds")
    def locate(recipe: str) -> str:
        return str(recipe) if Path(recipe).exists() else str(Path(path).parent / recipe)

    recipes = [locate(r) for r in data["recipes"]]
    variants = {name: ({**(v or {}), "recipe": locate(v["recipe"])} if isinstance(v, dict) and "recipe" in v else v)
                for name, v in data["variants"].items()}
    return recipes, variants, data.get("seeds")


def _command(variant: Variant) -> str:
    raw = load_file(variant.recipe) or {}
    return "finetune" if raw.get("task") else "pretrain"


def _overrides(variant: Variant, seed: int, run_dir: Path) -> list[str]:
    """What the child process of ``variant`` and ``seed`` gets on top of its recipe."""
    return [*variant.overrides, f"trainer.seed={seed}", f"output_dir={run_dir}", "trainer.progress=false"]


def _resolved(variant: Variant, seed: int, run_dir: Path) -> dict[str, Any]:
    from polygraft.recipe import Recipe

    return Recipe.from_yaml(variant.recipe, _overrides(variant, seed, run_dir)).to_dict()


_HOW_STARTED = ("overwrite", "resume")  # how a run was started, not what it trains


def _same_run(saved: dict[str, Any], wanted: dict[str, Any]) -> bool:
    """Whether a finished run's saved recipe trains what ``wanted`` asks for (how it was started aside)."""
    def trains(recipe: dict[str, Any]) -> dict[str, Any]:
        return {key: value for key, value in recipe.items() if key not in _HOW_STARTED}

    return trains(saved) == trains(wanted)


def run_variant(variant: Variant, seed: int, output: Path, *, log: Any = sys.stderr,
                timeout: float | None = None) -> Outcome:
    """Train (or reuse, or resume) one variant and seed in a child process; never raises for a failed run (only
    :class:`~polygraft.compare_child.Interrupted` when compare itself is told to stop)."""
    run_dir = output / "runs" / f"{_slug(variant.name)}-seed{seed}"
    outcome = Outcome(variant, seed, run_dir)
    try:
        wanted = _resolved(variant, seed, run_dir)
    except Exception as exc:  # a bad override: report it as this variant's failure
        outcome.status, outcome.error = "failed", f"{type(exc).__name__}: {exc}"
        return outcome
    run = RunDirectory(run_dir, enabled=False)
    if run.results_file.is_file() and run.config_file.is_file() and _same_run(run.read_config(), wanted):
        outcome.status, outcome.results = "reused", run.read_results()
        return outcome
    overrides = _overrides(variant, seed, run_dir)
    if run.last_checkpoint.is_file() and not run.results_file.is_file():
        overrides.append("resume=last")
        outcome.status = "resumed"
    elif run.holds_a_run() or run.incomplete_marker.exists():  # one made with other settings: this run replaces
        run.clear()  # it; cleared here, not by the child's overwrite=true, which would delete the train.log below
    print(f"[compare] {variant.name} seed {seed}: {outcome.status if outcome.status == 'resumed' else 'training'}"
          f" → {run_dir}", file=log, flush=True)
    command = [sys.executable, "-m", "polygraft", _command(variant), variant.recipe, *overrides, "--json"]
    started = time.time()
    process = run_child(command, log_file=run.log_file, timeout=timeout)
    finished = run.results_file.is_file() and run.results_file.stat().st_mtime >= started - 1
    if finished:  # the run wrote its results: it is done, whatever happened after (a warning, a slow exit)
        outcome.results = run.read_results()
        if process.returncode != 0:
            outcome.note = f"{exit_status(process.returncode)} after writing its results (see {run.log_file})"
            print(f"[compare] {variant.name} seed {seed}: {outcome.note}", file=log, flush=True)
        return outcome
    outcome.status = "failed"
    if process.timed_out:
        outcome.error = (f"timed out after {timeout:g} s and was stopped (its last checkpoint lets a re-run resume it; "
                         f"log: {run.log_file})")
    else:
        outcome.error = f"{exit_status(process.returncode)}: {last_error(process.output)} (log: {run.log_file})"
    print(f"[compare] {variant.name} seed {seed} failed: {outcome.error}", file=log, flush=True)
    return outcome


def exit_status(code: int) -> str:
    """``exit code 2`` or ``killed by SIGKILL`` (a negative return code is the signal that ended the child)."""
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def last_error(stderr: str) -> str:
    """The line of a child's output that says what went wrong: its ``error:`` line, a traceback's last line, else
    its last lines (progress bars and log lines are not errors)."""
    lines = [line.strip() for line in stderr.replace("\r", "\n").splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    if errors:
        return errors[-1]
    if any(line.startswith("Traceback") for line in lines):
        return lines[-1]
    return " | ".join(lines[-3:]) if lines else "no output"


def compare(recipes: Sequence[str], *, output: str | Path, vary: Sequence[str] = (), seeds: Sequence[int] = (0,),
            common: Sequence[str] = (), variant_file: str | Path | None = None, log: Any = sys.stderr,
            timeout: float | None = None) -> dict[str, Any]:
    """Run every variant × seed, then write ``comparison.md``, ``comparison.json`` and ``comparison.png`` into
    ``output``; returns the comparison (what ``comparison.json`` holds). ``timeout``: seconds a child may train
    before it is stopped and counted as failed."""
    from polygraft.compare_report import summarise, write_reports

    named = None
    if variant_file is not None:
        file_recipes, named, file_seeds = read_variant_file(variant_file)
        recipes = [*recipes, *file_recipes]
        seeds = file_seeds if file_seeds and tuple(seeds) == (0,) else seeds
    variants = plan_variants(recipes, vary=vary, named=named, common=common)
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    if timeout is not None and timeout <= 0:
        raise ConfigError(f"--timeout must be a positive number of seconds, got {timeout}")
    outcomes = [run_variant(variant, int(seed), output, log=log, timeout=timeout)
                for variant in variants for seed in seeds]
    comparison = summarise(outcomes, seeds=[int(s) for s in seeds])
    write_reports(comparison, output)
    return comparison

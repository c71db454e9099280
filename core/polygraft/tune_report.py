"""What ``polygraft tune`` leaves in its folder: ``tune.json`` (every trial), ``tune.md`` (the table), ``tune.png``
(each trial's value, pruned ones marked where they stopped, the best so far; and how much each parameter mattered)
and ``best.yaml`` (the recipe with the best trial's values: ``polygraft finetune DIR/best.yaml`` trains it again).

Parameter importance is Optuna's ``get_param_importances`` (fANOVA) over the finished trials; it needs at least two
of them and is left out (and said so) otherwise.

Example:
    >>> from polygraft.tune_report import steps_saved
    >>> steps_saved([{"steps": 100}, {"steps": 10}], full=100)
    (110, 0.55)
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    from polygraft.tune import Search
    from polygraft.tune_space import Dimension


def steps_saved(trials: Sequence[dict[str, Any]], *, full: int) -> tuple[int, float]:
    """Optimizer steps all trials trained, and their share of ``full`` steps per trial (what no pruning costs)."""
    total = sum(int(t.get("steps") or 0) for t in trials)
    return total, round(total / max(1, full * len(trials)), 4)


def trial_rows(study: Any, dimensions: Sequence[Dimension]) -> list[dict[str, Any]]:
    rows = []
    for trial in study.get_trials(deepcopy=False):
        state = trial.state.name.lower()
        value = trial.value if trial.value is not None else (
            trial.intermediate_values[max(trial.intermediate_values)] if trial.intermediate_values else None)
        rows.append({
            "number": trial.number, "state": {"complete": "complete", "pruned": "pruned", "fail": "failed"}.get(
                state, state), "value": value,
            "params": {d.key: d.value_of(trial.params[d.key]) for d in dimensions if d.key in trial.params},
            "steps": trial.user_attrs.get("steps"), "seconds": trial.user_attrs.get("seconds"),
            "run_dir": trial.user_attrs.get("run_dir"), "pruned_at": trial.user_attrs.get("pruned_at"),
            "error": trial.user_attrs.get("error"),
            "intermediate": {str(step): v for step, v in sorted(trial.intermediate_values.items())},
        })
    return rows


def importances(study: Any) -> dict[str, float]:
    import optuna
    from optuna.trial import TrialState

    if len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))) < 2:
        return {}
    try:
        return {k: round(float(v), 4) for k, v in optuna.importance.get_param_importances(study).items()}
    except (RuntimeError, ValueError, ZeroDivisionError):  # every finished trial took the same values
        return {}


def summary(study: Any, search: Search, dimensions: Sequence[Dimension], output: Path) -> dict[str, Any]:
    rows = trial_rows(study, dimensions)
    complete = [r for r in rows if r["state"] == "complete"]
    best = None
    if complete:
        pick = max if search.direction == "maximize" else min
        best = pick(complete, key=lambda r: r["value"])
    full = max((int(r["steps"] or 0) for r in complete), default=0)
    total, share = steps_saved(rows, full=full)
    return {"recipe": search.recipe, "overrides": list(search.overrides), "space": [d.spec() for d in dimensions],
            "sampler": search.sampler, "pruner": search.pruner, "startup_trials": search.startup_trials,
            "seed": search.seed, "metric": search.metric, "direction": search.direction, "storage":
            f"sqlite:///{(output / 'study.db').resolve()}", "trials": rows, "best": best,
            "counts": {state: sum(r["state"] == state for r in rows) for state in ("complete", "pruned", "failed")},
            "steps": {"total": total, "per_full_trial": full, "share_of_unpruned": share},
            "importance": importances(study)}


def render_markdown(report: dict[str, Any]) -> str:
    keys = [spec.split("=", 1)[0] for spec in report["space"]]
    lines = [f"# polygraft tune: {report['recipe']}", "",
             f"Search: {', '.join(f'`{s}`' for s in report['space'])}; sampler {report['sampler']} (seed "
             f"{report['seed']}, {report['startup_trials']} start-up trials), pruner {report['pruner']}; "
             f"{report['direction']} `{report['metric']}`.", ""]
    best = report["best"]
    if best is not None:
        shown = ", ".join(f"`{k}={v}`" for k, v in best["params"].items())
        lines += [f"**Best: trial {best['number']}** with {shown}: {report['metric']} = {best['value']:.4f}. "
                  "Train it again with `polygraft finetune best.yaml`.", ""]
    steps = report["steps"]
    counts = report["counts"]
    lines += [f"{counts['complete']} trials finished, {counts['pruned']} pruned, {counts['failed']} failed; "
              f"{steps['total']:,} optimizer steps in all, {steps['share_of_unpruned']:.0%} of what "
              f"{len(report['trials'])} unpruned trials of {steps['per_full_trial']:,} steps would take.", ""]
    lines += ["| trial | state | " + " | ".join(keys) + f" | {report['metric']} | steps | seconds |",
              "|" + "---|" * (len(keys) + 5)]
    ordered = sorted(report["trials"], key=lambda r: (r["state"] != "complete", _order(r, report["direction"])))
    for row in ordered:
        value = f"{row['value']:.4f}" if isinstance(row["value"], float) else "-"
        if row["state"] == "pruned":
            value += f" (at step {row['pruned_at']})"
        params = " | ".join(_cell(row["params"].get(k)) for k in keys)
        lines.append(f"| {row['number']} | {row['state']} | {params} | {value} | {row['steps'] or '-'} | "
                     f"{row['seconds'] or '-'} |")
    if report["importance"]:
        lines += ["", "Parameter importance (fANOVA over the finished trials): " + ", ".join(
            f"`{k}` {v:.2f}" for k, v in report["importance"].items())]
    else:
        lines += ["", "Parameter importance: needs at least two finished trials with different values."]
    failed = [r for r in report["trials"] if r["state"] == "failed"]
    lines += [f"- trial {r['number']} failed: {r['error']}" for r in failed]
    return "\n".join(lines) + "\n"


def _order(row: dict[str, Any], direction: str) -> float:
    value = row["value"] if isinstance(row["value"], float) else math.inf
    return -value if direction == "maximize" and math.isfinite(value) else value


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return json.dumps(value) if not isinstance(value, str) else value


def plot(report: dict[str, Any], path: Path) -> Path:
    """Left: each trial's value by trial number (pruned: its last reported value, marked x), the best so far; right:
    parameter importance."""
    from polygraft.plots import _pyplot

    plt = _pyplot()
    fig, (trials_ax, importance_ax) = plt.subplots(1, 2, figsize=(10, 3.8), gridspec_kw={"width_ratios": [3, 2]})
    rows = [r for r in report["trials"] if isinstance(r["value"], float)]
    for state, marker, color in (("complete", "o", "#4363d8"), ("pruned", "x", "#e6194b")):
        chosen = [r for r in rows if r["state"] == state]
        trials_ax.scatter([r["number"] for r in chosen], [r["value"] for r in chosen], marker=marker, color=color,
                          label=f"{state} ({len(chosen)})")
    best, best_line = None, []
    for row in sorted(report["trials"], key=lambda r: r["number"]):
        if row["state"] == "complete" and isinstance(row["value"], float):
            better = best is None or (row["value"] > best if report["direction"] == "maximize" else row["value"] < best)
            best = row["value"] if better else best
        best_line.append((row["number"], best))
    points = [(n, v) for n, v in best_line if v is not None]
    if points:
        trials_ax.step([n for n, _ in points], [v for _, v in points], where="post", color="#3cb44b", label="best so far")
    trials_ax.set_xlabel("trial")
    trials_ax.set_ylabel(report["metric"])
    trials_ax.legend(fontsize=8)
    names = list(report["importance"])
    if names:
        importance_ax.barh(range(len(names)), [report["importance"][n] for n in names], color="#f58231")
        importance_ax.set_yticks(range(len(names)), names, fontsize=8)
        importance_ax.invert_yaxis()
        importance_ax.set_xlabel("importance (fANOVA)")
    else:
        importance_ax.text(0.5, 0.5, "importance needs two finished\ntrials with different values", ha="center",
                           va="center", fontsize=9)
        importance_ax.set_axis_off()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def best_recipe(report: dict[str, Any], dimensions: Sequence[Dimension], output: Path) -> dict[str, Any] | None:
    """The recipe as written, with the search's overrides and the best trial's values, into ``DIR/best``."""
    from polygraft.recipe import apply_override
    from polygraft.safe_yaml import load_file

    best = report["best"]
    if best is None:
        return None
    raw = load_file(report["recipe"]) or {}
    for override in [*report["overrides"], *(d.override(best["params"][d.key]) for d in dimensions)]:
        apply_override(raw, override)
    raw["output_dir"] = str(output / "best")
    raw.pop("resume", None)
    raw.pop("overwrite", None)
    return raw


def write_reports(study: Any, search: Search, dimensions: Sequence[Dimension], output: Path) -> dict[str, Any]:
    """``tune.json``, ``tune.md``, ``tune.png`` and (once a trial finished) ``best.yaml``."""
    report = summary(study, search, dimensions, output)
    (output / "tune.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    (output / "tune.md").write_text(render_markdown(report))
    plot(report, output / "tune.png")
    recipe = best_recipe(report, dimensions, output)
    if recipe is not None:
        best = report["best"]
        header = (f"# polygraft tune {report['recipe']}: trial {best['number']} was best ({report['metric']} = "
                  f"{best['value']:.4f}).\n# Train it again: polygraft finetune {output / 'best.yaml'}\n")
        (output / "best.yaml").write_text(header + yaml.safe_dump(recipe, sort_keys=False))
    return report

"""``polygraft recommend``: which backbone, weights and strategy to start from, answered from measurements.

The answer comes from a table of results this project measured with its own runs (``recommend_data/measured.json``,
every row with its recipe, command, date and machine; ``--table`` adds ``polygraft compare`` outputs or table files
of your own) and these rules, documented in docs/recommend.md:

1. **Same modality, task and device.** Only rows measured for them count; where there are none, the answer says so
   and ranks nothing (it never borrows another task's numbers).
2. **Data size.** A row measured on ``n`` training examples covers ``n / 4`` to ``4 n``; rows outside are listed as
   not covering your ``N`` instead of being extrapolated.
3. **Compute.** Training time grows with the examples an epoch reads: the expected time is the row's time
   ``× N / n`` (plus its prerequisite, a pretraining run, if it needs one). Rows whose expected time exceeds the
   budget are left out; when none fits, that is an error naming the cheapest option. Peak memory is the row's (it
   depends on batch and model, not on N).
4. **Few examples.** Under 500 labelled examples (a few hundred), options that train few weights (a linear probe,
   LoRA: at most 5% of the weights) rank before the others, as full fine-tuning of millions of weights on so few
   examples is the most seed-sensitive choice; from 500 up, the measured metric decides.
5. **Order.** Within those groups: the expected metric (higher, or lower for losses and error rates), to two
   decimals, then the shorter time.

Example:
    >>> from polygraft.recommend import parse_budget
    >>> parse_budget("10m"), parse_budget("90s"), parse_budget("1.5h")
    (600.0, 90.0, 5400.0)
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from polygraft.errors import ConfigError

TABLE = Path(__file__).with_name("recommend_data") / "measured.json"
COVERAGE = 4.0
"""A row measured on n examples covers n / COVERAGE to n × COVERAGE."""
FEW_EXAMPLES = 500
"""Below this many examples, options that train few weights rank first."""
FEW_WEIGHTS = 0.05
"""... options that train at most this share of the weights."""
LOWER_IS_BETTER = ("loss", "eer", "wer", "cer", "error")
REQUIRED = ("modality", "task", "backbone", "strategy", "examples", "metric", "value", "train_s", "device")


def parse_budget(text: str) -> float:
    """``90s``, ``10m``, ``1.5h`` or plain seconds → seconds."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(s|sec|m|min|h|hr)?\s*", str(text))
    if not match:
        raise ConfigError(f"--budget {text!r}: give a time such as 90s, 10m or 2h")
    seconds = float(match.group(1)) * {"": 1, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "hr": 3600}[
        match.group(2) or ""]
    if seconds <= 0:
        raise ConfigError(f"--budget {text!r} must be more than zero")
    return seconds


def lower_is_better(metric: str) -> bool:
    name = metric.split("/", 1)[-1].lower()
    return any(name == m or name.endswith(m) for m in LOWER_IS_BETTER)


# ---------------------------------------------------------------------------------------------- tables
def load_rows(tables: Sequence[str | Path] = ()) -> list[dict[str, Any]]:
    """The shipped rows plus those of each ``--table`` (a compare output folder or a table file)."""
    rows = _table_file(TABLE)
    for table in tables:
        path = Path(table)
        if path.is_dir():
            rows.extend(rows_from_comparison(path / "comparison.json"))
        elif path.name == "comparison.json":
            rows.extend(rows_from_comparison(path))
        elif path.is_file():
            rows.extend(_table_file(path))
        else:
            raise ConfigError(f"--table {table}: no such folder or file; give a `polygraft compare --output` folder or "
                              "a table file like polygraft's recommend_data/measured.json")
    return rows


def _table_file(path: Path) -> list[dict[str, Any]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: cannot read the table ({type(exc).__name__}: {exc})") from None
    rows = data.get("rows") if isinstance(data, dict) else data
    if not isinstance(rows, list):
        raise ConfigError(f"{path}: a table is {{\"rows\": [...]}} or a list of rows")
    for index, row in enumerate(rows):
        missing = [key for key in REQUIRED if not isinstance(row, dict) or row.get(key) is None]
        if missing:
            raise ConfigError(f"{path}: row {index} lacks {missing}; every row needs {list(REQUIRED)}")
    return [{**row, "table": str(path)} for row in rows]


def rows_from_comparison(path: Path) -> list[dict[str, Any]]:
    """Rows from a ``polygraft compare`` output: one per variant that finished, with what its runs recorded."""
    from polygraft.plugins import build_catalog
    from polygraft.run import RunDirectory

    try:
        comparison = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: cannot read the comparison ({type(exc).__name__}: {exc})") from None
    catalog = build_catalog()
    rows = []
    for variant in comparison.get("variants", []):
        done = [run for run in variant.get("runs", []) if run.get("status") != "failed"]
        if "value" not in variant or not done or "train/wall_time_s" not in variant:
            continue
        run = RunDirectory(done[0]["run_dir"], enabled=False)
        config = run.read_config()
        data = json.loads(run.data_file.read_text()) if run.data_file.is_file() else {}
        backbone = config.get("backbone", "?")
        try:
            modality = catalog.get("backbone", backbone).modality
        except Exception:
            modality = "unknown"
        rows.append({
            "id": f"{path.parent.name}:{variant['variant']}", "modality": modality, "task": config.get("task") or "?",
            "backbone": backbone, "weights": None if variant.get("weights") == "random init" else variant.get("weights"),
            "strategy": variant.get("strategy", "?"), "recipe": variant.get("recipe"),
            "overrides": list(variant.get("overrides", [])), "data": str(config.get("data", {}).get("train", {})),
            "examples": int((data.get("train") or {}).get("size") or 0), "metric": variant["metric"],
            "value": variant["value"], "std": variant.get("std"), "seeds": comparison.get("seeds", [0]),
            "train_s": variant["train/wall_time_s"], "peak_mb": variant.get("memory/peak_mb"),
            "trainable": variant.get("params/trainable"), "total": variant.get("params/total"),
            "device": "unknown", "machine": "not recorded (your compare run)", "table": str(path),
            "date": time.strftime("%Y-%m-%d", time.gmtime(path.stat().st_mtime)),
            "command": f"polygraft compare ... --output {path.parent}", "source": str(path), "note": "",
        })
    return rows


# ---------------------------------------------------------------------------------------------- ranking
def recommend(*, modality: str, task: str, examples: int, budget: str | float, device: str = "cpu",
              tables: Sequence[str | Path] = (), limit: int = 5) -> dict[str, Any]:
    """The ranked options (see the module docstring); raises ConfigError for bad input and a budget too small."""
    if isinstance(examples, bool) or not isinstance(examples, int) or examples < 1:
        raise ConfigError(f"--examples must be a whole number of labelled training examples ≥ 1, got {examples!r}")
    seconds = budget if isinstance(budget, int | float) else parse_budget(budget)
    device = device.split(":")[0].lower()
    rows = load_rows(tables)
    answer: dict[str, Any] = {"query": {"modality": modality, "task": task, "examples": examples, "budget_s": seconds,
                                        "device": device}, "options": [], "not_covered": [], "over_budget": [],
                              "message": ""}
    same = [r for r in rows if r["modality"] == modality and r["task"] == task]
    if not same:
        known = sorted({f"{r['modality']}/{r['task']}" for r in rows})
        answer["message"] = (f"the table has no measurement for {modality} {task}; it covers {', '.join(known)}. "
                             "Measure the candidates with `polygraft compare` and pass its output with --table")
        return answer
    here = [r for r in same if r["device"] in (device, "unknown")]
    if not here:
        measured = sorted({r["device"] for r in same})
        answer["message"] = (f"{modality} {task} was measured on {', '.join(measured)} only, not on {device}; times there "
                             "would be a guess. Measure on this device with `polygraft compare` and pass --table")
        return answer
    covered = []
    for row in here:
        n = int(row["examples"])
        if n / COVERAGE <= examples <= n * COVERAGE:
            covered.append(row)
        else:
            answer["not_covered"].append(_brief(row, f"measured on {n:,} examples: {examples:,} is outside "
                                                     f"{math.ceil(n / COVERAGE):,}-{int(n * COVERAGE):,}"))
    if not covered:
        sizes = sorted({int(r["examples"]) for r in here})
        answer["message"] = (f"no {modality} {task} measurement covers {examples:,} examples (measured on "
                             f"{', '.join(f'{s:,}' for s in sizes)}; each covers a quarter to four times its size). "
                             "Measure your data size with `polygraft compare`, or pass --table")
        return answer
    options = []
    for row in covered:
        expected = float(row["train_s"]) * examples / int(row["examples"])
        prerequisite = (row.get("prerequisite") or {}).get("seconds") or 0
        total = expected + float(prerequisite)
        option = _option(row, examples, total, prerequisite)
        if total > seconds:
            answer["over_budget"].append(_brief(row, f"needs about {_duration(total)}, over the budget of "
                                                     f"{_duration(seconds)}"))
            continue
        options.append(option)
    if not options:
        cheapest = min(answer["over_budget"], key=lambda o: o["seconds"])
        raise ConfigError(f"a budget of {_duration(seconds)} is too small for any measured {modality} {task} option on "
                          f"{examples:,} examples: the cheapest, {cheapest['choice']}, needs about "
                          f"{_duration(cheapest['seconds'])}. Raise --budget, or use fewer examples")
    options.sort(key=lambda o: (o["group"], -o["score"], o["seconds"]))
    for rank, option in enumerate(options, start=1):
        option["rank"] = rank
        option["reason"] = _reason(option, options[0], examples, seconds)
    answer["options"] = options[:limit]
    answer["more"] = max(0, len(options) - limit)
    return answer


def _trains_few(row: dict[str, Any]) -> bool:
    trainable, total = row.get("trainable"), row.get("total")
    if isinstance(trainable, int | float) and isinstance(total, int | float) and total > 0:
        return trainable / total <= FEW_WEIGHTS
    return any(part in ("linear-probe", "lora") for part in str(row["strategy"]).split("+"))


def _choice(row: dict[str, Any]) -> str:
    epochs = row.get("epochs")
    trained = f", {epochs} epoch{'s' if epochs != 1 else ''}" if isinstance(epochs, int) else ""
    return f"{row['backbone']} + {row.get('weights') or 'random init'} + {row['strategy']}{trained}"


def _option(row: dict[str, Any], examples: int, seconds: float, prerequisite: float) -> dict[str, Any]:
    few = _trains_few(row)
    value = float(row["value"])
    return {"choice": _choice(row), "backbone": row["backbone"], "weights": row.get("weights"),
            "strategy": row["strategy"], "metric": row["metric"], "expected": value, "std": row.get("std"),
            "seeds": row.get("seeds"), "measured_examples": int(row["examples"]), "seconds": round(seconds, 1),
            "prerequisite_s": prerequisite, "peak_mb": row.get("peak_mb"), "trainable": row.get("trainable"),
            "trains_few_weights": few, "group": 0 if few and examples < FEW_EXAMPLES else 1,
            "score": round(-value if lower_is_better(row["metric"]) else value, 2),
            "recipe": row.get("recipe"), "overrides": list(row.get("overrides") or []),
            "run": " ".join(["polygraft finetune", str(row.get("recipe")), *(_quoted(o) for o in row.get("overrides") or [])]),
            "measured": {"date": row.get("date"), "machine": row.get("machine"), "command": row.get("command"),
                         "source": row.get("source"), "device": row.get("device")},
            "note": row.get("note", ""), "id": row.get("id"), "prerequisite": row.get("prerequisite")}


def _reason(option: dict[str, Any], first: dict[str, Any], examples: int, budget: float) -> str:
    parts = []
    if option["group"] == 0:
        parts.append(f"few examples ({examples:,} < {FEW_EXAMPLES}): it trains few weights "
                     f"({_count(option['trainable'])}), the least seed-sensitive choice")
    elif option is first:
        parts.append(f"the best measured {option['metric']} that fits {_duration(budget)}")
    else:
        parts.append(f"{option['metric']} {option['expected']:.3f} against {first['expected']:.3f} for rank 1")
    parts.append(f"about {_duration(option['seconds'])} for {examples:,} examples (measured {option['measured_examples']:,})")
    if option["prerequisite"]:
        parts.append(f"includes {_duration(option['prerequisite_s'])} of {option['prerequisite']['what']} "
                     f"({option['prerequisite']['recipe']})")
    if option["measured"]["device"] == "unknown":
        parts.append("device not recorded")
    return "; ".join(parts)


def _brief(row: dict[str, Any], why: str) -> dict[str, Any]:
    prerequisite = (row.get("prerequisite") or {}).get("seconds") or 0
    return {"choice": _choice(row), "why": why, "id": row.get("id"),
            "seconds": round(float(row["train_s"]) + prerequisite, 1)}


def _quoted(text: str) -> str:
    return f"'{text}'" if any(c in text for c in " []{}") else text


def _count(value: Any) -> str:
    if not isinstance(value, int | float):
        return "count not recorded"
    return f"{value / 1e6:.1f} M" if value >= 1e6 else f"{value / 1e3:.1f} k" if value >= 1e3 else f"{int(value)}"


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def render_text(answer: dict[str, Any]) -> str:
    """The answer for a person: ranked options, each with its numbers, its reason and how to run it."""
    q = answer["query"]
    head = (f"{q['modality']} {q['task']}, {q['examples']:,} labelled examples, {_duration(q['budget_s'])} on "
            f"{q['device']}:")
    lines = [head]
    if answer["message"]:
        lines.append(answer["message"])
    for option in answer["options"]:
        spread = f" ± {option['std']:.3f}" if option.get("std") else ""
        memory = f"{option['peak_mb']:,.0f} MB" if option.get("peak_mb") else "memory not measured"
        lines += [f"{option['rank']}. {option['choice']}: {option['metric']} {option['expected']:.3f}{spread} "
                  f"(seeds {option['seeds']}), ~{_duration(option['seconds'])}, {memory}",
                  f"   why: {option['reason']}",
                  f"   run: {option['run']}",
                  f"   measured {option['measured']['date']} on {option['measured']['machine']}: "
                  f"{option['measured']['command']}"]
    if answer.get("more"):
        lines.append(f"({answer['more']} more fit the budget: --top N shows them)")
    for title, key in (("over the budget", "over_budget"), ("not covering this data size", "not_covered")):
        if answer[key]:
            lines.append(f"{title}: " + "; ".join(f"{o['choice']} ({o['why']})" for o in answer[key][:6]))
    return "\n".join(lines)

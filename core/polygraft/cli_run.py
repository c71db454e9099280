"""``polygraft finetune | pretrain | evaluate | predict``: argument parsing here, work in recipe/api.

Heavy libraries are imported inside the handlers, so ``polygraft --help`` stays fast.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def _print_metrics(metrics: dict[str, Any], as_json: bool, extra: dict[str, Any] | None = None) -> None:
    if as_json:
        print(json.dumps({**(extra or {}), "metrics": metrics}, indent=2))
        return
    for key, value in (extra or {}).items():
        if key == "skipped":
            for split, report in value.items():
                if report.get("total"):
                    reasons = ", ".join(f"{r} ({row['count']})" for r, row in report["reasons"].items())
                    print(f"skipped in {split}: {report['total']} — {reasons}")
            continue
        print(f"{key}: {value}")
    for key in sorted(metrics):
        value = metrics[key]
        print(f"{key:32s} {value:.4f}" if isinstance(value, float) else f"{key:32s} {value}")


def cmd_train(args: argparse.Namespace) -> int:
    from polygraft.errors import ConfigError
    from polygraft.recipe import Recipe, run_recipe

    recipe = Recipe.from_yaml(args.recipe, args.overrides)
    wanted = "task" if args.command == "finetune" else "objective"
    if getattr(recipe, wanted) is None:
        other = "pretrain" if args.command == "finetune" else "finetune"
        raise ConfigError(f"{args.recipe} has no {wanted!r}; run it with `polygraft {other}`")
    if args.json:
        recipe.trainer.progress = False
    if args.overwrite:
        recipe.overwrite = True
    result = run_recipe(recipe)
    _print_metrics(result.metrics, args.json, {"run_dir": str(result.run_dir), "stopped": result.stop_reason,
                                               "skipped": result.skipped})
    if result.interrupted:
        from polygraft.training.signals import EXIT_CODES

        return EXIT_CODES[result.interrupted]  # 128 + the signal: what a scheduler expects of a stopped job
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    import polygraft
    from polygraft.errors import ConfigError
    from polygraft.recipe import Recipe, check_evaluation_labels, load_split, report_skips
    from polygraft.run import RunDirectory
    from polygraft.training.trainer import Trainer

    run = RunDirectory(args.run_dir, enabled=False)
    run.check_finished()
    recipe = Recipe.from_dict(run.read_config(), overrides=args.overrides, where=str(run.config_file))
    catalog = polygraft.build_catalog()
    split = args.split or ("test" if "test" in recipe.data else "val")
    data = load_split(recipe, split, catalog)
    if data is None:
        raise ConfigError(f"the recipe of {run.path} has no data.{split}; pass --split or data.{split}.dataset=...")
    report_skips(split, data)
    module = polygraft.load(run.path, catalog=catalog)
    check_evaluation_labels(module, split, data)
    recipe.trainer.progress = False
    metrics = Trainer(recipe.trainer).evaluate(module, data, prefix=split)
    _print_metrics(metrics, args.json, {"run_dir": str(run.path), "split": split,
                                        "skipped": {split: data.skip_report()}})
    return 0


SHOWN_INPUT = 200
"""Characters of an input echoed back in predictions (a long text is shortened, never printed whole)."""


def prediction_inputs(args: argparse.Namespace) -> list[str]:
    """The positional inputs, with ``-`` replaced by the lines of standard input and ``--file F`` by the lines of
    ``F`` (one input per line, blank lines skipped)."""
    from polygraft.errors import ConfigError

    values: list[str] = []
    for value in args.inputs:
        if value == "-":
            values.extend(line for line in sys.stdin.read().splitlines() if line.strip())
        else:
            values.append(value)
    for file in args.file or []:
        try:
            text = Path(file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{file}: cannot read inputs ({type(exc).__name__}: {exc}); give a UTF-8 text file "
                              "with one input per line") from None
        values.extend(line for line in text.splitlines() if line.strip())
    return values


def parse_fields(items: list[str]) -> dict[str, str]:
    """``--field name=value`` options as a mapping (a name given twice is an error)."""
    from polygraft.errors import ConfigError

    fields: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise ConfigError(f"--field takes NAME=VALUE (e.g. --field text='a fine film'), got {item!r}")
        if name.strip() in fields:
            raise ConfigError(f"--field {name.strip()} is given twice")
        fields[name.strip()] = value
    return fields


def cmd_predict(args: argparse.Namespace) -> int:
    from polygraft.errors import ConfigError

    values = prediction_inputs(args)
    fields = parse_fields(args.field or [])
    if not values and not fields:
        raise ConfigError("give something to predict: inputs as arguments, '-' for standard input, --file F (one "
                          "input per line) or --field NAME=VALUE")
    task = _predicting_module(args.run_dir)
    pre = task.backbone.preprocessor
    examples = [pre.read_input(value) for value in values]
    shown: list[Any] = [_short(value) for value in values]
    if fields:
        examples.append(pre.read_fields(fields))
        shown.append({name: _short(value) for name, value in fields.items()})
    predictions = task.predict_examples(examples)
    if len(predictions) == len(examples):  # one answer per input (the default)
        results = [{"input": given, **prediction} for given, prediction in zip(shown, predictions)]
        if args.draw:
            for example, result in zip(examples, results):
                task.draw_predictions(example, result, args.draw)
    else:  # answers about several inputs at once (verification pairs) name their inputs themselves
        results = list(predictions)
        if args.draw:
            raise ConfigError(f"task {task.spec_name!r} answers about several inputs at once and draws nothing; "
                              "drop --draw")
    if args.json:
        print(json.dumps(results, indent=2))  # always a list, one entry per prediction
    else:
        for result in results:
            print(_human(result))
    return 0


def _predicting_module(run_dir: str) -> Any:
    """The run's task, or for a pretraining run whose objective can predict from the saved backbone alone (it
    saved ``objective_options``, as ``clm``), that objective rebuilt around the backbone."""
    import polygraft
    from polygraft.errors import ConfigError
    from polygraft.interfaces import Backbone
    from polygraft.model_io import find_model_dir, read_model_config

    module = polygraft.load(run_dir)
    if not isinstance(module, Backbone):
        return module
    config = read_model_config(find_model_dir(run_dir))
    objective, options = config.get("objective"), config.get("objective_options")
    if not objective or not isinstance(options, dict):
        raise ConfigError(f"{run_dir} holds a pretrained backbone ({objective or 'no objective'}) whose objective "
                          "heads were not saved, so it has nothing to predict; fine-tune it (weights: "
                          f"{run_dir}) and predict with that run")
    return polygraft.create_objective(objective, backbone=module, **options).to(next(module.parameters()).device).eval()


def _human(result: dict[str, Any]) -> str:
    if "label" in result:
        top = sorted(result.get("probabilities", {}).items(), key=lambda kv: -kv[1])[:5]
        shown = ", ".join(f"{name} {p:.3f}" for name, p in top)
        return f"{result['input']}: {result['label']} ({shown})"
    if "same_identity" in result:
        verdict = {True: "same identity", False: "different identities", None: "no threshold saved"}
        threshold = "none" if result["threshold"] is None else f"{result['threshold']:.4f}"
        return (f"{result['reference']} vs {result['input']}: {verdict[result['same_identity']]} "
                f"(score {result['score']:.4f}, threshold {threshold} chosen on validation)")
    if "pixel_fractions" in result:
        shown = ", ".join(f"{name} {share:.1%}" for name, share in result["pixel_fractions"].items())
        return f"{result['input']}: {shown} (masks: --json)"
    if "answer" in result:
        where = f"characters {result['start']}–{result['end']}" if result["answer"] else "no answer"
        return f"{result['answer']!r} ({where}, score {result['score']:.3f})"
    if "continuation" in result:
        return str(result["text"])
    return json.dumps(result)


def _short(value: str) -> str:
    return value if len(value) <= SHOWN_INPUT else f"{value[:SHOWN_INPUT]}… ({len(value):,} characters)"


def cmd_compare(args: argparse.Namespace) -> int:
    from polygraft.compare import compare
    from polygraft.compare_report import render_text
    from polygraft.errors import ConfigError

    recipes = [item for item in args.items if "=" not in item]
    overrides = [item for item in args.items if "=" in item]
    try:
        seeds = [int(seed) for seed in args.seeds.split(",") if seed.strip()]
    except ValueError:
        raise ConfigError(f"--seeds takes integers separated by commas, got {args.seeds!r}") from None
    from polygraft.compare_child import Interrupted
    from polygraft.training.signals import EXIT_CODES

    try:
        comparison = compare(recipes, output=args.output, vary=args.vary, seeds=seeds or [0], common=overrides,
                             variant_file=args.variants, timeout=args.timeout)
    except Interrupted as stopped:
        print(f"interrupted by {stopped.name}: the running variant was stopped (it keeps its last checkpoint); run "
              "the same command again to resume the comparison", file=sys.stderr)
        return EXIT_CODES.get(stopped.name, 130)
    if args.json:
        print(json.dumps(comparison, indent=2))
    else:
        print(render_text(comparison))
        print(f"\nwrote {args.output}/comparison.md, comparison.json and comparison.png")
    failed = any(run["status"] == "failed" for row in comparison["variants"] for run in row["runs"])
    return 1 if failed else 0


def add_commands(sub: Any) -> None:
    """Register the training commands on the main parser's subparsers."""
    for name, helptext in (("finetune", "fine-tune a task from a YAML recipe"),
                           ("pretrain", "pretrain a backbone with an objective from a YAML recipe")):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("recipe", help="YAML recipe (see examples/)")
        p.add_argument("overrides", nargs="*", metavar="key.sub=value", help="dotted overrides, e.g. trainer.max_steps=5")
        p.add_argument("--json", action="store_true", help="print the final metrics as JSON (no progress bar)")
        p.add_argument("--overwrite", action="store_true", help="replace an earlier run in the recipe's output_dir")
        p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="evaluate a trained run on its test (or val) data")
    p.add_argument("run_dir")
    p.add_argument("overrides", nargs="*", metavar="key.sub=value", help="e.g. data.test.path=other.csv")
    p.add_argument("--split", choices=["train", "val", "test"], help="which data split of the recipe")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("compare", help="train variants of recipes and compare them side by side",
                       description="Train every recipe x every --vary combination (or the variants of a --variants "
                                   "file) x every seed, each in its own process, and write comparison.md/.json/.png. "
                                   "Finished variants are reused and interrupted ones resume when run again.")
    p.add_argument("items", nargs="*", metavar="RECIPE | key=value",
                   help="recipes, and overrides applied to every variant (e.g. trainer.max_epochs=1)")
    p.add_argument("--vary", action="append", default=[], metavar="KEY=V1,V2",
                   help="one axis of variants, e.g. --vary weights=minilm-l6,null --vary strategy=full,lora")
    p.add_argument("--variants", metavar="FILE.yaml", help="named variants: {recipes: [...], variants: {name: {...}}}")
    p.add_argument("--seeds", default="0", help="comma-separated seeds; the table shows mean ± std (default 0)")
    p.add_argument("--timeout", type=float, metavar="SECONDS",
                   help="stop a variant that trains longer than this (it counts as failed; the others go on)")
    p.add_argument("--output", required=True, metavar="DIR", help="where the runs and reports go")
    p.add_argument("--json", action="store_true", help="print the comparison as JSON")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("predict", help="predict with a trained run: text, image or audio paths",
                       description="Inputs are read as the model's preprocessor reads them (Preprocessor.read_input); "
                                   "an input that starts with '-' (a negative number) is an input, not an option. "
                                   "--json prints a list with one prediction per input.")
    p.add_argument("run_dir")
    p.add_argument("inputs", nargs="*", help="a text, an image or audio file path, a JSON vector...; '-' reads one input "
                   "per line from standard input")
    p.add_argument("--file", action="append", metavar="FILE", help="read inputs from FILE, one per line")
    p.add_argument("--field", action="append", metavar="NAME=VALUE",
                   help="one example made of named fields (question and context, an image and a text...)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--draw", metavar="OUT.png", help="render the prediction onto the image (detections, mask overlay)")
    p.set_defaults(func=cmd_predict)



"""``polygraft tune`` and ``polygraft recommend``: spend less compute for the same result.

Argument parsing here, work in :mod:`polygraft.tune` and :mod:`polygraft.recommend`; Optuna is imported only when
``tune`` runs.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def cmd_tune(args: argparse.Namespace) -> int:
    from polygraft.compare_child import Interrupted
    from polygraft.training.signals import EXIT_CODES
    from polygraft.tune import Search, tune

    search = Search(recipe=args.recipe, space=args.space, trials=args.trials or 0, sampler=args.sampler,
                    pruner=args.pruner, metric=args.metric or "", direction=args.direction or "", seed=args.seed,
                    overrides=list(args.overrides), grid_points=args.grid_points,
                    startup_trials=args.startup_trials or 0, nproc_per_node=args.nproc_per_node)
    try:
        report = tune(search, args.output, timeout=args.timeout)
    except Interrupted as stopped:
        print(f"interrupted by {stopped.name}: the running trial was stopped (it keeps its last checkpoint); run the "
              "same command again to resume the search", file=sys.stderr)
        return EXIT_CODES.get(stopped.name, 130)
    if args.json:
        print(json.dumps(report, indent=2, default=str))
    else:
        from polygraft.tune_report import render_markdown

        print(render_markdown(report))
        print(f"wrote {args.output}/tune.md, tune.json, tune.png" + (", best.yaml" if report["best"] else ""))
    return 0 if report["best"] is not None else 1


def cmd_recommend(args: argparse.Namespace) -> int:
    from polygraft.recommend import recommend, render_text

    answer = recommend(modality=args.modality, task=args.task, examples=args.examples, budget=args.budget,
                       device=args.device, tables=args.table or [], limit=args.top)
    if args.json:
        print(json.dumps(answer, indent=2))
    else:
        print(render_text(answer))
    return 0 if answer["options"] else 1


def add_commands(sub: Any) -> None:
    """Register ``tune`` and ``recommend`` on the main parser's subparsers."""
    p = sub.add_parser("tune", help="hyper-parameter search (Optuna) with pruning; each trial a child run",
                       description="Search RECIPE's keys with Optuna: each trial trains in its own process, pruning "
                                   "reads its validation metrics, the study lives in DIR/study.db (run the same "
                                   "command again to resume). Writes tune.md, tune.json, tune.png and best.yaml.")
    p.add_argument("recipe", help="YAML recipe with a validation split")
    p.add_argument("overrides", nargs="*", metavar="key.sub=value", help="overrides for every trial")
    p.add_argument("--space", action="append", default=[], metavar="KEY=SPEC", required=True,
                   help="a key to search: loguniform:LOW:HIGH, uniform:LOW:HIGH, int:LOW:HIGH[:STEP], "
                        "logint:LOW:HIGH, or values V1,V2,... (e.g. trainer.lr=loguniform:1e-5:1e-2, strategy=full,lora)")
    p.add_argument("--trials", type=int, metavar="N", help="trials in all (a re-run may raise it); grid: the whole "
                   "grid by default")
    p.add_argument("--sampler", choices=["tpe", "random", "grid"], default="tpe")
    p.add_argument("--pruner", choices=["median", "none"], default="median")
    p.add_argument("--metric", metavar="val/NAME", help="what to optimise (default: the task's metric on val)")
    p.add_argument("--direction", choices=["maximize", "minimize"], help="default: minimise losses and error rates "
                   "(loss, eer, wer, cer), maximise everything else")
    p.add_argument("--seed", type=int, default=0, help="seeds the sampler (the same command gives the same trials)")
    p.add_argument("--grid-points", type=int, default=5, metavar="K", help="values per range for --sampler grid")
    p.add_argument("--startup-trials", type=int, metavar="N", help="random trials before TPE models the results, and "
                   "finished trials before the median pruner prunes (default: a quarter of --trials, 3 to 10)")
    p.add_argument("--nproc-per-node", type=int, default=1, metavar="N", help="train each trial under torchrun with N "
                   "processes (DDP); rank 0's metrics decide")
    p.add_argument("--timeout", type=float, metavar="SECONDS", help="stop a trial that trains longer (it fails)")
    p.add_argument("--output", required=True, metavar="DIR", help="the study, the trials and the reports")
    p.add_argument("--json", action="store_true", help="print tune.json")
    p.set_defaults(func=cmd_tune)

    p = sub.add_parser("recommend", help="which backbone, weights and strategy for this data and budget (from "
                       "measured runs)",
                       description="Rank backbone + weights + strategy choices for a modality and task from a table of "
                                   "results this project measured (shipped with polygraft; add your own compare "
                                   "outputs with --table), with the documented rules for data size and compute.")
    p.add_argument("--modality", required=True, help="text, vision, speech, ...")
    p.add_argument("--task", required=True, help="classification, token-classification, ...")
    p.add_argument("--examples", type=int, required=True, metavar="N", help="labelled training examples you have")
    p.add_argument("--budget", required=True, metavar="TIME", help="training time you can spend: 90s, 10m, 2h")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--table", action="append", metavar="DIR", help="also use this compare output (its "
                   "comparison.json) or a table file; repeatable")
    p.add_argument("--top", type=int, default=5, metavar="K", help="options to show (default 5)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_recommend)

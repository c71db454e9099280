"""The ``polygraft`` command. Listing commands import no deep-learning library.

Training commands run with ``OMP_WAIT_POLICY=PASSIVE`` unless the environment sets it: idle OpenMP threads then
sleep instead of spinning on cores that DataLoader workers or other DDP ranks need (on a 2-core machine spinning
made steps about 5x slower with two processes computing at once). It must be set before torch is imported, which
the CLI does only inside a command.

Example:
    $ polygraft plugins --json
    $ polygraft list backbones --modality vision
    $ polygraft finetune examples/text/sentiment.yaml trainer.max_steps=5
    $ polygraft new-plugin tabular --modality tabular --dir plugins-dev
    $ polygraft doctor --json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

from polygraft import __version__
from polygraft.cli_compute import add_commands as add_compute_commands
from polygraft.cli_explain import add_commands as add_explain_commands
from polygraft.cli_export import add_commands as add_export_commands
from polygraft.cli_run import add_commands as add_training_commands
from polygraft.errors import PolygraftError
from polygraft.specs import KIND_PLURALS

LIST_KINDS = [plural for kind, plural in KIND_PLURALS.items()]
KIND_SINGULAR = {plural: kind for kind, plural in KIND_PLURALS.items()}


def _table(rows: list[list[str]], headers: list[str]) -> str:
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows)]
    lines = ["  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip()
             for row in [headers, ["-" * w for w in widths], *rows]]
    return "\n".join(lines)


def cmd_plugins(args: argparse.Namespace) -> int:
    from polygraft.importcheck import factory_problems
    from polygraft.plugins import build_catalog

    catalog = build_catalog()
    infos = [info.to_dict() for info in catalog.plugins]
    by_distribution = {info["distribution"]: info for info in infos if info["status"] == "ok"}
    for problem in factory_problems(catalog):  # found without importing the factories
        if problem.owner in by_distribution:
            by_distribution[problem.owner]["notes"].append(f"{problem.kind} {problem.name!r} cannot be created: "
                                                           f"{problem.problem}")
    if args.json:
        print(json.dumps(infos, indent=2))
        return 0
    rows = []
    for info in infos:
        counts = ", ".join(f"{n} {KIND_PLURALS[k] if n != 1 else k}" for k, n in sorted(info["counts"].items()))
        rows.append([info["name"], info["distribution"], info["version"], info["status"], counts or "-"])
    print(_table(rows, ["plugin", "distribution", "version", "status", "components"]))
    for info in infos:
        if info["status"] == "failed":
            print(f"\n{info['distribution']} (entry point {info['name']!r}) failed to load: {info['error']}",
                  file=sys.stderr)
        for note in info["notes"]:
            print(f"note: {info['distribution']} ({info['name']}): {note}", file=sys.stderr)
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from polygraft.api import list_components
    from polygraft.importcheck import factory_problems
    from polygraft.plugins import build_catalog

    catalog = build_catalog()
    rows = list_components(args.kind, modality=args.modality, catalog=catalog)
    failed = [f"{info.distribution} ({info.name})" for info in catalog.failed_plugins()]
    kind = KIND_SINGULAR[args.kind]
    problems = {(p.owner, p.name): p for p in factory_problems(catalog, kinds={kind})}
    for row in rows:
        problem = problems.get((row["plugin"], row["name"].rpartition(":")[2]))
        row["problem"] = problem.problem if problem else None
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        table = [[r["name"], r["modality"], r["plugin"], r["description"]] for r in rows]
        print(_table(table, ["name", "modality", "plugin", "description"]) if table else f"no {args.kind} registered")
    for problem in problems.values():
        print(f"note: {problem}", file=sys.stderr)
    if failed:
        print(f"note: {len(failed)} plugin(s) failed to load and may be missing here: {', '.join(failed)}; "
              "see `polygraft plugins`", file=sys.stderr)
    return 0


def cmd_new_plugin(args: argparse.Namespace) -> int:
    from polygraft.scaffold import new_plugin, plugin_values

    root = new_plugin(args.name, modality=args.modality, directory=args.dir, input_key=args.input_key,
                      force=args.force)
    values = plugin_values(args.name, modality=args.modality, input_key=args.input_key)
    print(f"wrote {root}")
    print(f"  backbone {values['backbone']!r}, dataset {values['dataset']!r}, modality {values['modality']!r}")
    print("next:")
    print(f"  cd {root} && pip install -e . && polygraft plugins")
    print("  pytest                               # the conformance kit on every component")
    print("  polygraft finetune recipes/example.yaml")
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from polygraft.doctor import diagnose, exit_code, format_report

    report = diagnose()
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return exit_code(report)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="polygraft",
        description="Multimodal transfer learning: pretrained backbones from plugins, one trainer for all.",
    )
    parser.add_argument("--version", action="version", version=f"polygraft {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("plugins", help="installed plugins, their status and what they provide")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_plugins)

    p = sub.add_parser("list", help="registered components of one kind")
    p.add_argument("kind", choices=LIST_KINDS)
    p.add_argument("--modality", metavar="NAME", help="only this modality (text, vision, speech, or one a plugin "
                   "declares; see `polygraft list modalities`)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_list)

    add_training_commands(sub)  # finetune, pretrain, evaluate, predict (cli_run.py)
    add_explain_commands(sub)  # explain (cli_explain.py)
    add_export_commands(sub)  # export, serve (cli_export.py)
    add_compute_commands(sub)  # tune, recommend (cli_compute.py)

    p = sub.add_parser("new-plugin", help="write a new plugin distribution to start from (backbone, preprocessor, "
                       "dataset, recipe, tests)")
    p.add_argument("name", help="plugin name: NAME becomes the distribution polygraft-NAME")
    p.add_argument("--modality", default="any", metavar="M", help="text, vision, speech, any, or a new modality the "
                   "plugin declares (e.g. tabular); default: any")
    p.add_argument("--input-key", metavar="KEY", help="raw example key of a new modality's input (default x)")
    p.add_argument("--dir", default=".", help="where to create the folder polygraft-NAME (default: here)")
    p.add_argument("--force", action="store_true", help="write into an existing, non-empty folder")
    p.set_defaults(func=cmd_new_plugin)

    p = sub.add_parser("doctor", help="versions, devices, plugins, weights, and what is misconfigured (exit 1)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_doctor)
    return parser


def plugin_commands(reserved: set[str]) -> dict[str, Any]:
    """Commands plugins register (``polygraft_register_commands``), by name; a plugin command named like a core
    command is left out (the core command wins; ``polygraft plugins`` shows the plugin's spec)."""
    from polygraft.plugins import build_catalog

    registry = build_catalog().registry("command")
    return {name: registry.get(name) for name in registry.names() if name not in reserved}


def run_plugin_command(spec: Any, argv: list[str]) -> int:
    """Import the plugin command's entry point and run it with the arguments after its name."""
    main = spec.load_factory()
    result = main(argv)
    return int(result or 0)


DASH_INPUT = "\x00input:"
"""Marks a ``predict`` input that starts with ``-`` (``-1.5,2.0``, ``-``) so argparse does not take it for an option."""


def _looks_like_option(value: str) -> bool:
    return value.startswith("--") and len(value) > 2 and value[2:3].isalpha()


def _protect_dash_inputs(argv: list[str]) -> list[str]:
    """For ``predict``: arguments after the run directory that start with ``-`` but are no option (a negative
    number, a CSV row, ``-`` for standard input) are inputs."""
    if not argv or argv[0] != "predict":
        return argv
    options = {"--json", "--draw", "--file", "--field", "-h", "--help"}
    out, expect_value = [], False
    for index, value in enumerate(argv):
        if index == 0 or expect_value or value in options or value.split("=", 1)[0] in options:
            expect_value = value in ("--draw", "--file", "--field")
            out.append(value)
        elif value.startswith("-") and not _looks_like_option(value):
            out.append(DASH_INPUT + value)
        else:
            out.append(value)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    sub = next(action for action in parser._actions if isinstance(action, argparse._SubParsersAction))
    first = next((value for value in argv if not value.startswith("-")), None)
    if first is None or first not in sub.choices:  # a plugin's command, or help listing them
        try:
            commands = plugin_commands(set(sub.choices))
        except PolygraftError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        if first in commands:
            os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
            rest = argv[argv.index(first) + 1:]
            try:
                return run_plugin_command(commands[first], rest)
            except PolygraftError as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 2
        for name, spec in commands.items():
            sub.add_parser(name, help=f"{spec.description or 'a plugin command'} (plugin command)", add_help=False)
    args, extras = parser.parse_known_args(_protect_dash_inputs(argv))
    extras = [extra.removeprefix(DASH_INPUT) for extra in extras]
    if hasattr(args, "inputs"):
        args.inputs = [value.removeprefix(DASH_INPUT) for value in args.inputs]
    positional = next((name for name in ("items", "overrides", "inputs") if hasattr(args, name)), None)
    if extras and positional and not any(_looks_like_option(extra) for extra in extras):
        setattr(args, positional, [*getattr(args, positional), *extras])  # positionals written after the options
    elif extras:
        parser.error(f"unrecognized arguments: {' '.join(extras)} (an input that starts with '--' goes after '--')")
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch is first imported (see the module docstring)
    try:
        return int(args.func(args) or 0)
    except PolygraftError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

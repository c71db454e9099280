"""The ``polygraft`` command. Listing commands import no deep-learning library.

Example:
    $ polygraft plugins --json
    $ polygraft list backbones --modality vision
    $ polygraft finetune examples/text/sentiment.yaml trainer.max_steps=5
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from polygraft import __version__
from polygraft.cli_run import add_commands as add_training_commands
from polygraft.errors import PolygraftError
from polygraft.specs import KIND_PLURALS

LIST_KINDS = [plural for kind, plural in KIND_PLURALS.items()]


def _table(rows: list[list[str]], headers: list[str]) -> str:
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows)]
    lines = ["  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip()
             for row in [headers, ["-" * w for w in widths], *rows]]
    return "\n".join(lines)


def cmd_plugins(args: argparse.Namespace) -> int:
    from polygraft.plugins import build_catalog

    catalog = build_catalog()
    infos = [info.to_dict() for info in catalog.plugins]
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
    from polygraft.plugins import build_catalog

    catalog = build_catalog()
    rows = list_components(args.kind, modality=args.modality, catalog=catalog)
    failed = [f"{info.distribution} ({info.name})" for info in catalog.failed_plugins()]
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        table = [[r["name"], r["modality"], r["plugin"], r["description"]] for r in rows]
        print(_table(table, ["name", "modality", "plugin", "description"]) if table else f"no {args.kind} registered")
    if failed:
        print(f"note: {len(failed)} plugin(s) failed to load and may be missing here: {', '.join(failed)}; "
              "see `polygraft plugins`", file=sys.stderr)
    return 0


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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
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

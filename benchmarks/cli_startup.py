"""Start-up time of the ``polygraft`` command with every installed plugin, against ``import torch``.

Each command runs in a fresh subprocess, ``--runs`` times after one untimed warm-up run (file cache), and the
median wall time is reported. ``python -c "import torch"`` is the yardstick: the CLI must stay well under it
because nothing heavy is imported to list or describe components (DESIGN.md, "Components are data until used").
The requirement is ``polygraft --help`` under 1 s on the 2-core development machine.

Run:
    .venv/bin/python benchmarks/cli_startup.py              # 7 runs each
    .venv/bin/python benchmarks/cli_startup.py --runs 3 --json cli.json

Exit status 1 when ``polygraft --help`` takes 1 s or more (``--limit`` to change), so ``make bench`` notices.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path


def polygraft_command() -> list[str]:
    """The ``polygraft`` script next to this interpreter (the venv's), else ``python -m polygraft``."""
    script = Path(sys.executable).with_name("polygraft")
    if script.exists():
        return [str(script)]
    found = shutil.which("polygraft")
    return [found] if found else [sys.executable, "-m", "polygraft"]


def commands() -> dict[str, list[str]]:
    cli = polygraft_command()
    return {
        "polygraft --help": [*cli, "--help"],
        "polygraft plugins": [*cli, "plugins"],
        "polygraft list backbones": [*cli, "list", "backbones"],
        "python -c 'import polygraft'": [sys.executable, "-c", "import polygraft"],
        "python -c 'import torch'": [sys.executable, "-c", "import torch"],
    }


def time_command(command: list[str], runs: int) -> list[float]:
    """Wall times in ms of ``runs`` runs (after one untimed warm-up run); fails loudly on a non-zero exit."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONWARNINGS": "ignore"}
    times = []
    for index in range(runs + 1):
        start = time.perf_counter()
        proc = subprocess.run(command, env=env, capture_output=True, text=True)
        elapsed = (time.perf_counter() - start) * 1000
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(command)} failed (exit {proc.returncode}):\n{proc.stderr[-2000:]}")
        if index:
            times.append(elapsed)
    return times


def heavy_modules(command: list[str]) -> list[str]:
    """Which of torch/transformers/timm/torchvision/torchaudio/lightning a command imported (-X importtime)."""
    env = {**os.environ, "PYTHONPROFILEIMPORTTIME": "1", "HF_HUB_OFFLINE": "1"}
    full = command if command[0] == sys.executable else [sys.executable, *command]
    proc = subprocess.run(full, env=env, capture_output=True, text=True)
    heavy = ("torch", "transformers", "timm", "torchvision", "torchaudio", "lightning")
    found = set()
    for line in proc.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            name = line.rsplit("|", 1)[1].strip()
            if name in heavy:
                found.add(name)
    return sorted(found)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--limit", type=float, default=1000.0, help="ms allowed for `polygraft --help`")
    parser.add_argument("--json", dest="json_out", help="also write the results to this JSON file")
    args = parser.parse_args(argv)

    print(f"load before: {os.getloadavg()[0]:.2f} | {os.cpu_count()} CPUs | {args.runs} runs each", flush=True)
    results = {}
    for label, command in commands().items():
        times = time_command(command, args.runs)
        results[label] = {"median_ms": statistics.median(times), "min_ms": min(times), "max_ms": max(times),
                          "heavy_imports": heavy_modules(command)}
    yardstick = results["python -c 'import torch'"]["median_ms"]
    print(f"load after: {os.getloadavg()[0]:.2f}\n")
    print(f"{'command':<30} {'median ms':>10} {'min':>8} {'max':>8} {'/ import torch':>15}  heavy imports")
    for label, row in results.items():
        row["ratio_to_import_torch"] = row["median_ms"] / yardstick
        print(f"{label:<30} {row['median_ms']:10.0f} {row['min_ms']:8.0f} {row['max_ms']:8.0f} "
              f"{row['ratio_to_import_torch']:15.2f}  {', '.join(row['heavy_imports']) or '-'}")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(results, indent=2))
    help_ms = results["polygraft --help"]["median_ms"]
    ok = help_ms < args.limit
    print(f"\npolygraft --help: {help_ms:.0f} ms ({'OK' if ok else 'FAIL'}: limit {args.limit:.0f} ms)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

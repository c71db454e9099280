"""The CLI: version, plugins, list — and that none of them imports a deep-learning library."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from polygraft.cli import main
from polygraft.testing import heavy_modules_imported_by


@pytest.mark.parametrize("argv", [["--help"], ["plugins"], ["plugins", "--json"], ["list", "backbones"],
                                  ["list", "tasks", "--json"], ["list", "weights", "--modality", "vision"]])
def test_listing_commands_import_no_heavy_library(argv: list[str]) -> None:
    code = f"import sys\nfrom polygraft.cli import main\ntry:\n    main({argv!r})\nexcept SystemExit:\n    pass"
    assert heavy_modules_imported_by(code) == []


def test_heavy_import_probe_detects_torch() -> None:
    assert heavy_modules_imported_by("import torch") == ["torch"]


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--version"])
    assert "polygraft 0.1.0" in capsys.readouterr().out


def test_list_json_filters_by_modality(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "backbones", "--json", "--modality", "text"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows and all(row["modality"] in ("text", "any") for row in rows)
    assert {"name", "plugin", "factory", "produces"} <= set(rows[0])


def test_plugins_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    assert "polygraft-text" in out and "status" in out


def test_module_entry_point_runs() -> None:
    result = subprocess.run([sys.executable, "-m", "polygraft", "list", "datasets", "--json"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "synthetic-classification" in result.stdout


@pytest.mark.parametrize(("given", "expected"), [(None, "PASSIVE"), ("ACTIVE", "ACTIVE")])
def test_commands_run_with_passive_openmp_waits_unless_told_otherwise(given: str | None, expected: str) -> None:
    import os

    env = {key: value for key, value in os.environ.items() if key != "OMP_WAIT_POLICY"}
    if given is not None:
        env["OMP_WAIT_POLICY"] = given
    code = ("import os, sys; from polygraft.cli import main; main(['list', 'tasks']); "
            "print(os.environ['OMP_WAIT_POLICY'], 'torch' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-2:] == [expected, "False"]  # set before torch was ever imported

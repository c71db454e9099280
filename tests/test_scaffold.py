"""``polygraft new-plugin``: the generated distributions install, show in ``polygraft plugins``, pass their own
tests unchanged (the conformance kit included) and fine-tune from their recipe.

Generated plugins are installed the way pip would into a folder of their own (``install_for_tests``) and used in
subprocesses, so the shared environment never sees them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from polygraft.cli import main
from polygraft.errors import ConfigError
from polygraft.scaffold import new_plugin, plugin_values, polygraft_requirement
from polygraft.testing import install_for_tests

POLYGRAFT = str(Path(sys.executable).with_name("polygraft"))
GENERATED = [("tabular", "tabular"), ("notes", "text"), ("pics", "vision"), ("clips", "speech"), ("rows", "any")]


def run(*args: str, site: Path, cwd: Path | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run(list(args), capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout)


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Every kind of generated plugin, installed into one site folder: ``(projects, site)``."""
    projects = tmp_path_factory.mktemp("projects")
    site = tmp_path_factory.mktemp("site")
    for name, modality in GENERATED:
        assert main(["new-plugin", name, "--modality", modality, "--dir", str(projects)]) == 0
        install_for_tests(projects / f"polygraft-{name}", site)
    return projects, site


def test_generated_plugins_show_in_polygraft_plugins(generated: tuple[Path, Path]) -> None:
    _, site = generated
    result = run(POLYGRAFT, "plugins", "--json", site=site)
    assert result.returncode == 0, result.stderr
    plugins = {p["distribution"]: p for p in json.loads(result.stdout)}
    for name, modality in GENERATED:
        info = plugins[f"polygraft-{name}"]
        assert info["status"] == "ok" and not info["notes"], info
        expected = {"backbone": 1, "dataset": 1} | ({"modality": 1} if modality == "tabular" else {})
        assert info["counts"] == expected
    listed = run(POLYGRAFT, "list", "datasets", "--modality", "tabular", "--json", site=site)
    assert "tabular-csv" in {row["name"] for row in json.loads(listed.stdout)}


def test_generated_tests_pass_unchanged(generated: tuple[Path, Path]) -> None:
    projects, site = generated
    tests = [str(projects / f"polygraft-{name}" / "tests") for name, _ in GENERATED]
    packages = [str(site / f"polygraft_{name}") for name, _ in GENERATED]  # their docstring examples too
    result = run(sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--import-mode=importlib",
                 "--doctest-modules", f"--rootdir={projects}", *tests, *packages, site=site, cwd=projects)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert f"{4 * len(GENERATED) + 3 * len(GENERATED)} passed" in result.stdout, result.stdout[-500:]


def test_generated_recipe_finetunes_and_predicts(generated: tuple[Path, Path]) -> None:
    projects, site = generated
    project = projects / "polygraft-tabular"
    trained = run(POLYGRAFT, "finetune", "recipes/example.yaml", "trainer.max_epochs=5", "--json",
                  site=site, cwd=project)
    assert trained.returncode == 0, trained.stderr[-3000:]
    assert json.loads(trained.stdout)["metrics"]["test/accuracy"] >= 0.75  # two well separated classes
    predicted = run(POLYGRAFT, "predict", "runs/tabular", "10.2,9.8,11.0,10.4", "--json", site=site, cwd=project)
    assert predicted.returncode == 0, predicted.stderr[-2000:]
    assert json.loads(predicted.stdout)[0]["label"] == "a"


def test_layout_and_pyproject(tmp_path: Path) -> None:
    root = new_plugin("polygraft-acme", modality="shapes", input_key="points", directory=tmp_path)
    assert root == tmp_path / "polygraft-acme"
    files = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
    assert files == ["README.md", "data/example.csv", "polygraft_acme/__init__.py", "polygraft_acme/backbone.py",
                     "polygraft_acme/data.py", "polygraft_acme/plugin.py", "polygraft_acme/preprocess.py",
                     "pyproject.toml", "recipes/example.yaml", "tests/test_conformance.py", "tests/test_preprocess.py"]
    pyproject = (root / "pyproject.toml").read_text()
    assert '[project.entry-points.polygraft]\nacme = "polygraft_acme.plugin"' in pyproject
    assert f'"{polygraft_requirement()}"' in pyproject and polygraft_requirement() == "polygraft>=0.1,<0.2"
    plugin = (root / "polygraft_acme" / "plugin.py").read_text()
    assert 'ModalitySpec(name="shapes", input_key="points"' in plugin
    assert 'input_key = "points"' in (root / "polygraft_acme" / "preprocess.py").read_text()


def test_known_modalities_are_not_declared_again(tmp_path: Path) -> None:
    values = plugin_values("notes", modality="text", input_key=None)
    assert values["modality_hook"] == "" and values["input_key"] == "text"
    assert plugin_values("pics", modality="vision", input_key=None)["input_key"] == "image"
    plugin = (new_plugin("notes", modality="text", directory=tmp_path) / "polygraft_notes" / "plugin.py").read_text()
    assert "ModalitySpec" not in plugin and 'modality="text"' in plugin


def test_bad_names_and_existing_folders_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for bad in ("Acme", "acme_models", "1acme", "acme--x"):
        with pytest.raises(ConfigError, match="lowercase letters, digits and single hyphens"):
            new_plugin(bad, directory=tmp_path)
    with pytest.raises(ConfigError, match="modality 'Tab Ular'"):
        new_plugin("acme", modality="Tab Ular", directory=tmp_path)
    new_plugin("acme", directory=tmp_path)
    assert main(["new-plugin", "acme", "--dir", str(tmp_path)]) == 2
    assert "already exists and is not empty" in capsys.readouterr().err
    assert main(["new-plugin", "acme", "--dir", str(tmp_path), "--force"]) == 0

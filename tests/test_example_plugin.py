"""The example third-party plugin (examples/plugins/polygraft-tabular), installed the way pip would install it
into a separate folder (the shared environment is left alone), used only through the CLI: it adds a modality,
fine-tunes, and its model — fitted standardiser included — survives ``polygraft.load`` and ``predict``."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from polygraft.testing import install_for_tests

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "plugins" / "polygraft-tabular"
POLYGRAFT = str(Path(sys.executable).with_name("polygraft"))
SHIFT = 100.0

LOAD_SCRIPT = """
import json, sys
import torch
import polygraft
from polygraft_tabular.data import WineSource

model = polygraft.load(sys.argv[1])
train = WineSource(split="train", shift=float(sys.argv[2]))
rows = torch.tensor([example["x"] for example in train], dtype=torch.float64)
pre = model.backbone.preprocessor
test = WineSource(split="test", shift=float(sys.argv[2]))
batch = model.collate([model.prepare_example(example) for example in test])
correct = sum(p["label"] == e["label"] for p, e in zip(model.predict(batch), test))
try:
    polygraft.load(sys.argv[3])
    refused = None
except polygraft.errors.PolygraftError as exc:
    refused = str(exc)
print(json.dumps({"mean": pre.mean, "fitted": rows.mean(0).tolist(), "describe": pre.describe(),
                  "labels": model.label_names, "test_accuracy": correct / len(test), "refused": refused}))
"""


def run(*args: str, site: Path, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run(list(args), capture_output=True, text=True, env=env, cwd=cwd, timeout=300)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return install_for_tests(EXAMPLE, tmp_path_factory.mktemp("site"))


def test_installed_example_adds_a_modality(site: Path) -> None:
    plugins = run(POLYGRAFT, "plugins", "--json", site=site)
    assert plugins.returncode == 0, plugins.stderr
    tabular = {p["distribution"]: p for p in json.loads(plugins.stdout)}["polygraft-tabular"]
    assert tabular["status"] == "ok" and tabular["counts"] == {"backbone": 1, "dataset": 1, "modality": 1}
    assert not tabular["notes"], tabular
    listed = run(POLYGRAFT, "list", "backbones", "--modality", "tabular", "--json", site=site)
    assert listed.returncode == 0, listed.stderr
    assert [(row["name"], row["plugin"]) for row in json.loads(listed.stdout) if row["modality"] == "tabular"] == \
        [("mlp", "polygraft-tabular")]


def test_finetune_load_and_predict_through_the_cli(site: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "wine"
    shifted = [f"data.{split}.shift={SHIFT}" for split in ("train", "val", "test")]
    trained = run(POLYGRAFT, "finetune", str(EXAMPLE / "recipes" / "wine.yaml"), f"output_dir={run_dir}", *shifted,
                  "--json", site=site)
    assert trained.returncode == 0, trained.stderr[-3000:]
    metrics = json.loads(trained.stdout)["metrics"]
    assert metrics["test/accuracy"] > 0.9, metrics  # 3 classes: chance is 0.40

    tampered = tmp_path / "tampered"
    shutil.copytree(run_dir / "model", tampered)
    config = json.loads((tampered / "polygraft.json").read_text())
    config["backbone"]["options"]["mean"][0] += 1.0  # the rebuilt preprocessing no longer matches the saved one
    (tampered / "polygraft.json").write_text(json.dumps(config))
    loaded = run(sys.executable, "-c", LOAD_SCRIPT, str(run_dir), str(SHIFT), str(tampered), site=site)
    assert loaded.returncode == 0, loaded.stderr[-3000:]
    state = json.loads(loaded.stdout)
    saved = json.loads((run_dir / "model" / "polygraft.json").read_text())
    assert state["describe"] == saved["preprocessing"]
    assert all(m > SHIFT for m in state["mean"])  # fitted on the shifted data, not the defaults
    assert state["mean"] == pytest.approx(state["fitted"], abs=1e-9)
    assert state["labels"] == ["class_0", "class_1", "class_2"]
    assert state["test_accuracy"] == pytest.approx(metrics["test/accuracy"], abs=1e-6)
    assert "rebuilt preprocessing differs" in state["refused"] and "mean" in state["refused"]

    from sklearn.datasets import load_wine

    wine = load_wine()
    row = [float(v) + SHIFT for v in wine.data[0]]  # a class_0 wine
    predicted = run(POLYGRAFT, "predict", str(run_dir), ",".join(map(str, row)), json.dumps(row), "--json",
                    site=site)
    assert predicted.returncode == 0, predicted.stderr[-3000:]
    as_csv, as_json = json.loads(predicted.stdout)
    assert as_csv["label"] == as_json["label"] == "class_0"
    assert as_csv["probabilities"] == pytest.approx(as_json["probabilities"])


def test_the_example_plugins_own_tests_pass(site: Path) -> None:
    result = run(sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests", site=site, cwd=EXAMPLE)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "5 passed" in result.stdout


def test_the_tutorial_quotes_the_example_as_it_is() -> None:
    """Every line of the code blocks in docs/writing-plugins.md is a line of the example plugin's files."""
    import re

    text = (ROOT / "docs" / "writing-plugins.md").read_text()
    sources = {"python": [*EXAMPLE.rglob("*.py")], "toml": [EXAMPLE / "pyproject.toml"],
               "yaml": sorted((EXAMPLE / "recipes").glob("*.yaml"))}
    blocks = re.findall(r"```(python|toml|yaml)\n(.*?)```", text, flags=re.S)
    assert len(blocks) >= 7
    for language, block in blocks:
        lines = {line for path in sources[language] for line in path.read_text().splitlines()}
        missing = [line for line in block.splitlines() if line.strip() and line not in lines]
        assert not missing, f"docs/writing-plugins.md quotes lines the example does not have: {missing[:3]}"

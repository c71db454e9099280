"""``polygraft doctor``: versions, devices, weights, declared polygraft ranges and every misconfiguration it must
name, with exit code 1 when something would break a recipe."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from polygraft.doctor import check_range, diagnose, exit_code, format_report
from polygraft.plugins import build_catalog

POLYGRAFT = str(Path(sys.executable).with_name("polygraft"))


def make_dist(root: Path, name: str, body: str, *, requires: tuple[str, ...] = ("polygraft>=0.1,<0.2",)) -> None:
    """An installed distribution with a ``polygraft`` entry point and the given Requires-Dist lines."""
    package = name.replace("-", "_")
    (root / f"{package}.py").write_text(body)
    info = root / f"{package}-1.0.dist-info"
    info.mkdir(parents=True)
    lines = [f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0"] + [f"Requires-Dist: {r}" for r in requires]
    (info / "METADATA").write_text("\n".join(lines) + "\n")
    (info / "entry_points.txt").write_text(f"[polygraft]\n{name} = {package}\n")


def doctor(site: Path | None = None, *, path: str | None = None) -> tuple[int, dict]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if site is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(site), env.get("PYTHONPATH", "")])
    if path is not None:
        env["PATH"] = path
    result = subprocess.run([POLYGRAFT, "doctor", "--json"], capture_output=True, text=True, env=env, timeout=300)
    return result.returncode, json.loads(result.stdout)


def plugin(kind: str, body: str) -> str:
    return f"from polygraft import hookimpl\nfrom polygraft.specs import {kind}\n" + textwrap.dedent(body)


@pytest.fixture(scope="module")
def broken_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    site = tmp_path_factory.mktemp("site")
    make_dist(site, "acme-broken", "raise ImportError('acme needs libfoo 3')\n")
    make_dist(site, "acme-future", plugin("DatasetSpec", """
        @hookimpl
        def polygraft_register_datasets(register):
            register(DatasetSpec(name="future-data", factory="acme_future:make"))

        def make(*, split: str = "train"):
            return None
        """), requires=("polygraft>=9.0",))
    make_dist(site, "acme-unranged", plugin("DatasetSpec", """
        @hookimpl
        def polygraft_register_datasets(register):
            register(DatasetSpec(name="shared-data", factory="acme_unranged:make", modality="tabular"))

        def make(*, split: str = "train"):
            return None
        """), requires=("polygraft",))
    make_dist(site, "acme-missing", plugin("DatasetSpec", """
        @hookimpl
        def polygraft_register_datasets(register):
            register(DatasetSpec(name="shared-data", factory="acme_missing_impl:make"))
        """))
    (site / "acme_missing_impl.py").write_text("import not_installed_lib_xyz\n\ndef make():\n    pass\n")
    make_dist(site, "acme-weights", plugin("WeightsSpec", """
        from polygraft.errors import AssetError

        @hookimpl
        def polygraft_register_weights(register):
            register(WeightsSpec(name="acme-net-imagenet", factory="acme_weights:path", backbone="toy"))

        def path():
            raise AssetError("acme-net weights are not installed: pip install acme-net-weights")
        """))
    return site


def test_a_healthy_installation(capsys: pytest.CaptureFixture[str]) -> None:
    code, report = doctor()
    assert report["polygraft"] == "0.1.0" and report["libraries"]["torch"]
    assert {"cpu", "cuda", "mps"} <= set(report["devices"])
    rows = {row["distribution"]: row for row in report["plugins"]}
    for name in ("polygraft-text", "polygraft-vision", "polygraft-speech"):
        assert rows[name]["status"] == "ok" and "requires_polygraft" in rows[name]
    assert {row["name"] for row in report["weights"]} >= {"minilm-l6", "whisper-tiny-en"}
    errors = [f for f in report["findings"] if f["level"] == "error"]
    assert code == (1 if errors else 0), errors


def test_every_misconfiguration_is_named(broken_site: Path) -> None:
    code, report = doctor(broken_site, path="/nonexistent")
    assert code == 1
    found = [(f["level"], f["topic"], f["message"]) for f in report["findings"]]

    def has(level: str, topic: str, text: str) -> bool:
        return any(lv == level and topic in tp and text in msg for lv, tp, msg in found)

    assert has("error", "acme-broken", "failed to load: ImportError: acme needs libfoo 3"), found
    assert has("error", "acme-future", "declares polygraft>=9.0, which excludes the installed polygraft 0.1.0"), found
    assert has("warning", "acme-unranged", "with no version range"), found
    assert has("error", "shared-data", "imports 'not_installed_lib_xyz', which is not installed"), found
    assert has("error", "acme-unranged", "'shared-data' alone is ambiguous"), found
    assert has("warning", "acme-unranged", "modality 'tabular', which no installed plugin declares"), found
    assert has("warning", "acme-net-imagenet", "does not resolve offline: AssetError: acme-net weights"), found
    assert has("warning", "polygraft-speech", "espeak-ng is not installed"), found
    weights = {row["name"]: row for row in report["weights"]}
    assert weights["acme-net-imagenet"]["resolved"] is False and weights["minilm-l6"]["resolved"] is True


@pytest.mark.parametrize(("requirement", "level", "text"), [
    (None, "warning", "does not depend on polygraft"),
    ("polygraft", "warning", "no version range"),
    ("polygraft>=0.1", "warning", "no upper bound"),
    ("polygraft>=0.1,<0.2", "ok", "declares polygraft>=0.1,<0.2"),
    ("polygraft~=0.1.0", "ok", "declares"),
    ("polygraft<0.1", "error", "excludes the installed polygraft 0.1.0"),
])
def test_declared_ranges(requirement: str | None, level: str, text: str) -> None:
    got_level, message = check_range(requirement, "0.1.0")
    assert got_level == level and text in message


def test_report_in_process_and_text_output() -> None:
    report = diagnose(build_catalog(autoload=False), devices=False, weights=False)
    assert exit_code(report) == 0 and report["findings"] == []
    text = format_report(diagnose(build_catalog(autoload=False), weights=False))
    for section in ("libraries:", "plugins:", "devices:", "findings: 0 error(s), 0 warning(s)"):
        assert section in text


def test_list_and_plugins_flag_unimportable_factories_without_heavy_imports(broken_site: Path) -> None:
    from polygraft.testing import heavy_modules_imported_by

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(broken_site), os.environ.get("PYTHONPATH", "")])}
    listed = subprocess.run([POLYGRAFT, "list", "datasets", "--json"], capture_output=True, text=True, env=env,
                            timeout=120)
    assert listed.returncode == 0, listed.stderr
    rows = {row["name"]: row for row in json.loads(listed.stdout)}
    assert "not_installed_lib_xyz" in rows["acme-missing:shared-data"]["problem"]
    assert rows["acme-unranged:shared-data"]["problem"] is None and rows["digits"]["problem"] is None
    assert "dataset 'shared-data' (acme-missing) cannot be created" in listed.stderr
    assert "1 plugin(s) failed to load" in listed.stderr
    plugins = subprocess.run([POLYGRAFT, "plugins", "--json"], capture_output=True, text=True, env=env, timeout=120)
    notes = {p["distribution"]: p["notes"] for p in json.loads(plugins.stdout)}
    assert any("dataset 'shared-data' cannot be created: module 'acme_missing_impl' imports 'not_installed_lib_xyz'"
               in note for note in notes["acme-missing"]), notes["acme-missing"]
    code = (f"import sys\nsys.path.insert(0, {str(broken_site)!r})\nfrom polygraft.cli import main\n"
            "main(['list', 'datasets']); main(['plugins'])")
    assert heavy_modules_imported_by(code) == []

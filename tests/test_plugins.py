"""Plugin discovery, isolation of broken plugins, and the environment switches."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from polygraft import hookimpl
from polygraft.errors import UnknownComponentError
from polygraft.plugins import build_catalog
from polygraft.specs import BackboneSpec, DatasetSpec

POLYGRAFT = str(Path(sys.executable).with_name("polygraft"))


class GoodPlugin:
    @hookimpl
    def polygraft_register_datasets(self, register):
        register(DatasetSpec(name="acme-data", factory="acme:make"))


class RaisingPlugin:
    @hookimpl
    def polygraft_register_backbones(self, register):
        register(BackboneSpec(name="half", factory="acme:half"))
        raise RuntimeError("boom while registering")


class DuplicatePlugin:
    @hookimpl
    def polygraft_register_backbones(self, register):
        register(BackboneSpec(name="toy", factory="acme:toy"))


def make_distribution(root: Path, name: str, module_body: str) -> Path:
    """A real installed distribution: a module plus a .dist-info with a `polygraft` entry point."""
    package = name.replace("-", "_")
    (root / f"{package}.py").write_text(textwrap.dedent(module_body))
    info = root / f"{package}-9.9.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 9.9\n")
    (info / "entry_points.txt").write_text(f"[polygraft]\n{name} = {package}\n")
    return root


def run_cli(*args: str, extra_path: Path | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    environment = {**os.environ, **(env or {})}
    if extra_path is not None:
        environment["PYTHONPATH"] = os.pathsep.join([str(extra_path), environment.get("PYTHONPATH", "")])
    return subprocess.run([POLYGRAFT, *args], capture_output=True, text=True, env=environment, timeout=60)


def test_installed_plugins_are_healthy() -> None:
    result = run_cli("plugins", "--json")
    assert result.returncode == 0, result.stderr
    plugins = {p["distribution"]: p for p in json.loads(result.stdout)}
    for name in ("polygraft", "polygraft-text", "polygraft-vision", "polygraft-speech"):
        assert plugins[name]["status"] == "ok", plugins[name]
        assert plugins[name]["version"] == "0.1.0"


def test_broken_distribution_is_reported_and_others_still_work(tmp_path: Path) -> None:
    make_distribution(tmp_path, "acme-broken", "raise ImportError('acme needs libfoo 3')\n")
    result = run_cli("plugins", "--json", extra_path=tmp_path)
    assert result.returncode == 0, result.stderr
    plugins = {p["distribution"]: p for p in json.loads(result.stdout)}
    assert plugins["acme-broken"]["status"] == "failed"
    assert "acme needs libfoo 3" in plugins["acme-broken"]["error"]
    assert plugins["acme-broken"]["version"] == "9.9"
    assert plugins["polygraft-text"]["status"] == "ok"
    listed = run_cli("list", "backbones", "--json", extra_path=tmp_path)
    assert listed.returncode == 0 and "toy" in listed.stdout


def test_disable_plugins_by_name_and_autoload_switch(tmp_path: Path) -> None:
    make_distribution(tmp_path, "acme-broken", "raise ImportError('never imported')\n")
    result = run_cli("plugins", "--json", extra_path=tmp_path, env={"POLYGRAFT_DISABLE_PLUGINS": "acme-broken,text"})
    plugins = {p["distribution"]: p for p in json.loads(result.stdout)}
    assert plugins["acme-broken"]["status"] == "disabled"
    assert plugins["polygraft-text"]["status"] == "disabled"
    assert plugins["polygraft-vision"]["status"] == "ok"
    result = run_cli("plugins", "--json", extra_path=tmp_path, env={"POLYGRAFT_DISABLE_PLUGIN_AUTOLOAD": "1"})
    assert [p["distribution"] for p in json.loads(result.stdout)] == ["polygraft"]


def test_registration_failure_is_isolated_and_rolled_back() -> None:
    catalog = build_catalog(autoload=False, plugins=[("raising", RaisingPlugin()), ("good", GoodPlugin())])
    status = {p.name: p for p in catalog.plugins}
    assert status["raising"].status == "failed" and "boom while registering" in status["raising"].error
    assert "half" not in catalog.registry("backbone")  # nothing half-registered
    assert "acme-data" in catalog.registry("dataset")
    with pytest.raises(UnknownComponentError, match="raising"):
        catalog.get("backbone", "half")


def test_a_clash_with_core_keeps_core_and_reports_both_owners() -> None:
    catalog = build_catalog(autoload=False, plugins=[("dupe", DuplicatePlugin())])
    dupe = catalog.plugins[-1]
    assert dupe.status == "ok"
    assert any("'toy' is also claimed by polygraft" in note and "dupe:toy" in note for note in dupe.notes)
    assert catalog.registry("backbone").owner("toy") == "polygraft"
    assert catalog.registry("backbone").owner("dupe:toy") == "dupe"


def test_catalogs_are_independent() -> None:
    first = build_catalog(autoload=False, plugins=[("good", GoodPlugin())])
    second = build_catalog(autoload=False)
    assert "acme-data" in first.registry("dataset")
    assert "acme-data" not in second.registry("dataset")
    assert first.pm is not second.pm


def test_first_party_plugins_are_light() -> None:
    from polygraft.testing import check_plugin_module

    for module in ("polygraft.builtin.plugin", "polygraft_text.plugin", "polygraft_vision.plugin",
                   "polygraft_speech.plugin"):
        check_plugin_module(module)

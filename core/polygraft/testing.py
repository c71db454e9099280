"""Testing helpers for plugin authors, loaded as a pytest plugin (entry point ``pytest11``).

Fixtures:
    ``polygraft_catalog``: a catalog with only builtins plus the installed plugins you name — isolated, no
    global state — built by ``polygraft_catalog_factory(plugins=[("mine", my_plugin_module)])``.

Conformance checks (call them from your plugin's tests):
    :func:`check_plugin_module` — the module only registers specs and imports nothing heavy.
    :func:`check_backbone` — a backbone built by its factory yields the features its spec promises.

Example (in a plugin's ``tests/test_conformance.py``)::

    from polygraft.testing import check_plugin_module, check_backbone

    def test_plugin_is_light():
        check_plugin_module("my_plugin.plugin")

    def test_backbone(polygraft_catalog_factory):
        catalog = polygraft_catalog_factory(plugins=[("mine", my_plugin.plugin)])
        check_backbone(catalog, "mynet", options={"tiny": True}, examples=[{"x": [0.0] * 4}])
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import pytest

HEAVY_MODULES = ("torch", "transformers", "timm", "torchvision", "torchaudio")


def heavy_modules_imported_by(code: str) -> list[str]:
    """Run ``code`` in a fresh interpreter and return which heavy libraries it imported."""
    probe = (
        f"{code}\nimport sys, json\n"
        f"print(json.dumps(sorted(m for m in {HEAVY_MODULES!r} if m in sys.modules)))"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert result.returncode == 0, f"probe failed:\n{result.stderr}"
    return json.loads(result.stdout.strip().splitlines()[-1])


def check_plugin_module(module_name: str) -> None:
    """Importing the plugin module and collecting its specs imports no heavy library."""
    code = (
        f"import importlib; from polygraft.plugins import build_catalog\n"
        f"m = importlib.import_module({module_name!r})\n"
        f"builtin = m.__name__ == 'polygraft.builtin.plugin'\n"
        f"c = build_catalog(autoload=False, plugins=[] if builtin else [('probe', m)])\n"
        f"assert c.plugins[-1].status == 'ok', c.plugins[-1].error"
    )
    heavy = heavy_modules_imported_by(code)
    assert not heavy, f"{module_name} imports {heavy} at module level; import them inside factories"


def check_backbone(catalog: Any, name: str, *, options: Mapping[str, Any] | None = None,
                   examples: Iterable[Mapping[str, Any]]) -> Any:
    """Build backbone ``name`` and check features, layer groups, freezing and preprocessing round trip."""
    import pickle

    import torch

    from polygraft.api import create_backbone

    spec = catalog.get("backbone", name)
    backbone = create_backbone(name, catalog=catalog, **dict(options or {}))
    pre = pickle.loads(pickle.dumps(backbone.preprocessor))  # must travel to DataLoader workers
    batch = pre.collate([pre(example) for example in examples])
    backbone.eval()
    with torch.no_grad():
        features = backbone(batch)
    pooled = features.pool()
    assert pooled.dim() == 2 and pooled.shape[1] == backbone.feature_dim, "pooled features must be (B, feature_dim)"
    for kind in spec.produces:
        value = {"pooled": features.pool(), "sequence": features.sequence, "maps": features.maps}[kind]
        assert value is not None, f"{name} promises {kind!r} features but did not produce them"
    if "maps" in spec.produces:
        assert len(features.maps) == len(backbone.map_channels), "one channel count per map"
        for fmap, channels in zip(features.maps, backbone.map_channels):
            assert fmap.shape[1] == channels
    groups = backbone.layer_groups()
    assert len(groups) >= 2, "layer_groups() must split the backbone into ordered groups"
    backbone.freeze(0)
    assert not any(p.requires_grad for p in backbone.parameters()), "freeze(0) must freeze everything"
    backbone.freeze(1)
    assert any(p.requires_grad for p in groups[-1].parameters()), "freeze(1) must leave the last group trainable"
    backbone.unfreeze()
    return backbone


@pytest.fixture
def polygraft_catalog_factory(monkeypatch: pytest.MonkeyPatch) -> Callable[..., Any]:
    """Build isolated catalogs: builtins plus the plugins given; no entry points unless ``autoload=True``."""
    from polygraft.plugins import build_catalog

    monkeypatch.delenv("POLYGRAFT_DISABLE_PLUGINS", raising=False)

    def factory(*, plugins: Iterable[tuple[str, object]] = (), autoload: bool = False) -> Any:
        return build_catalog(autoload=autoload, disabled=(), plugins=plugins)

    return factory


@pytest.fixture
def polygraft_catalog(polygraft_catalog_factory: Callable[..., Any]) -> Any:
    """A catalog of every installed plugin, fresh for this test."""
    return polygraft_catalog_factory(autoload=True)

"""Testing helpers for plugin authors, loaded as a pytest plugin (entry point ``pytest11``).

Fixtures:
    ``polygraft_catalog_factory``: builds isolated catalogs, ``factory(plugins=[("mine", my_plugin_module)])``:
    only core's builtins plus the plugins you name (no installed entry points unless ``autoload=True``).
    ``polygraft_catalog``: a fresh catalog of core plus every installed plugin.

Conformance checks (call them from your plugin's tests):
    :func:`check_plugin` — every component the plugin registers, run with tiny settings: factories import,
    backbones yield the promised features (kinds, sizes, batch size, finite, deterministic in eval), layer groups
    cover every trainable parameter once, export → JSON → ``polygraft.load`` rebuilds the same preprocessing
    (fitted state included) and features, datasets yield the documented keys and ``label_names``, tasks and
    objectives train and evaluate one step with a finite loss and gradients and survive save → load.
    :func:`check_plugin_module` — the module only registers specs, imports nothing heavy, uses real hook names
    and names factory modules that exist.
    :func:`check_backbone` — the backbone checks alone, for one backbone and one set of options.
    :func:`install_for_tests` — make a plugin project importable (with its entry points) from a folder, as
    ``pip install`` would, without building a wheel; put the folder on ``PYTHONPATH`` of a subprocess.

Example (in a plugin's ``tests/test_conformance.py``)::

    from polygraft.testing import check_backbone, check_plugin, check_plugin_module

    def test_plugin_is_light():
        check_plugin_module("my_plugin.plugin")

    def test_everything():
        check_plugin("my_plugin.plugin", options={"mynet": {"hidden": 8}, "my-csv": {"path": "tests/tiny.csv"}})

    def test_backbone(polygraft_catalog_factory):
        import my_plugin.plugin
        catalog = polygraft_catalog_factory(plugins=[("mine", my_plugin.plugin)])
        check_backbone(catalog, "mynet", options={"hidden": 8}, examples=[{"x": [0.0] * 4}, {"x": [1.0] * 4}])
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import pytest

from polygraft.conformance.install import install_for_tests
from polygraft.conformance.plugin import check_plugin
from polygraft.conformance.probe import HEAVY_MODULES, check_plugin_module, heavy_modules_imported_by
from polygraft.conformance.report import CheckFailed, Report

__all__ = [
    "HEAVY_MODULES",
    "CheckFailed",
    "Report",
    "check_backbone",
    "check_plugin",
    "check_plugin_module",
    "heavy_modules_imported_by",
    "install_for_tests",
]


def check_backbone(catalog: Any, name: str, *, options: Mapping[str, Any] | None = None,
                   examples: Iterable[Mapping[str, Any]] | None = None) -> Any:
    """Build backbone ``name`` with ``options`` and run every backbone check on ``examples`` (at least two raw
    examples; defaults for the input keys ``text``, ``image``, ``audio``, ``x``); returns the backbone.

    Raises :class:`CheckFailed` listing every problem found, each with what to fix.
    """
    from polygraft.conformance.backbones import check_backbone_checks

    report = Report(f"backbone {name!r}")
    result = check_backbone_checks(catalog, name, options, None if examples is None else list(examples), report)
    report.raise_for_failures()
    assert result is not None
    return result[0]


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
    """A catalog of core plus every installed plugin, fresh for this test."""
    return polygraft_catalog_factory(autoload=True)

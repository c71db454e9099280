"""polygraft-tabular's own tests: the conformance kit, and the fitted standardiser surviving export."""

from __future__ import annotations

import json

import pytest

import polygraft
from polygraft.errors import DataError
from polygraft.testing import check_plugin, check_plugin_module
from polygraft_tabular import plugin
from polygraft_tabular.data import WineSource


def catalog():
    """Core plus this plugin only, whatever else is installed."""
    return polygraft.build_catalog(autoload=False, plugins=[("tabular", plugin, "polygraft-tabular")])


def test_plugin_module_is_light():
    check_plugin_module("polygraft_tabular.plugin")


def test_every_component_conforms():
    check_plugin("polygraft_tabular.plugin", options={"mlp": {"hidden": 16}, "wine": {"shift": 50.0}})


def test_splits_are_disjoint_and_cover_the_data():
    parts = {split: {ex["_origin"] for ex in WineSource(split=split)} for split in ("train", "val", "test")}
    assert (len(parts["train"]), len(parts["val"]), len(parts["test"])) == (106, 36, 36)
    assert parts["train"] | parts["val"] | parts["test"] == {ex["_origin"] for ex in WineSource(split="all")}
    assert not parts["train"] & parts["test"]


def test_fitted_means_are_exported_and_rebuilt():
    train = WineSource(split="train", shift=100.0)
    backbone = polygraft.create_backbone("mlp", catalog=catalog(), hidden=8)
    backbone.preprocessor.fit(train)
    assert 100.0 < backbone.preprocessor.mean[0] < 120.0
    options = json.loads(json.dumps(backbone.export(None)))
    rebuilt = polygraft.create_backbone("mlp", catalog=catalog(), **options)
    assert rebuilt.preprocessor.describe() == backbone.preprocessor.describe()
    standardised = rebuilt.preprocessor(train[0])["x"]
    assert standardised.abs().max() < 10  # raw values are > 100


def test_predict_reads_csv_and_json_rows():
    pre = polygraft.create_backbone("mlp", catalog=catalog()).preprocessor
    row = WineSource(split="test")[0]["x"]
    assert pre.read_input(",".join(map(str, row))) == pre.read_input(json.dumps(row)) == {"x": row}
    with pytest.raises(DataError, match="expected 13 features, got 2"):
        pre.read_input("1.0,2.0")

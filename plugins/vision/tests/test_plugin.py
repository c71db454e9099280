"""The plugin module is light and registers what it promises."""

from __future__ import annotations

from polygraft.testing import check_plugin_module


def test_plugin_imports_nothing_heavy():
    check_plugin_module("polygraft_vision.plugin")


def test_specs_registered(catalog):
    assert catalog.get("backbone", "timm").produces == ("pooled", "maps")
    for name in ("image-folder", "image-csv", "coco", "mnist-5k", "digits", "synthetic-shapes"):
        assert catalog.get("dataset", name).modality == "vision"
    assert catalog.get("weights", "efficientnet-lite0-imagenet").backbone == "timm"
    assert catalog.get("weights", "mobilenetv2-imagenet").backbone == "timm"
    assert catalog.get("objective", "simclr")
    detection = catalog.get("task", "detection")
    assert (detection.consumes, detection.target) == ("maps", "boxes")

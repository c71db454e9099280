from __future__ import annotations

import pytest

from polygraft.errors import DuplicateComponentError, PluginError, UnknownComponentError
from polygraft.registry import Registry
from polygraft.specs import BackboneSpec, DatasetSpec


def backbone(name: str) -> BackboneSpec:
    return BackboneSpec(name=name, factory="somewhere:create", modality="vision")


def test_duplicate_name_names_both_plugins() -> None:
    registry = Registry("backbone")
    registry.register(backbone("resnet"), owner="polygraft-vision")
    with pytest.raises(DuplicateComponentError) as info:
        registry.register(backbone("resnet"), owner="acme-vision")
    message = str(info.value)
    assert "'polygraft-vision'" in message and "'acme-vision'" in message
    assert "replace=True" in message
    assert registry.owner("resnet") == "polygraft-vision"


def test_replace_true_overrides_on_purpose() -> None:
    registry = Registry("backbone")
    registry.register(backbone("resnet"), owner="a")
    registry.register(backbone("resnet"), owner="b", replace=True)
    assert registry.owner("resnet") == "b"


def test_unknown_name_lists_closest_names_with_their_plugin() -> None:
    registry = Registry("backbone")
    registry.register(backbone("bert"), owner="polygraft-text")
    registry.register(backbone("berta"), owner="acme")
    registry.register(backbone("timm"), owner="polygraft-vision")
    with pytest.raises(UnknownComponentError) as info:
        registry.get("bret")
    message = str(info.value)
    assert "'bert' (from polygraft-text)" in message
    assert "polygraft list backbones" in message
    assert "timm" in message  # known names listed


def test_unknown_first_party_name_says_which_plugin_to_install() -> None:
    registry = Registry("backbone")
    with pytest.raises(UnknownComponentError, match="pip install polygraft-vision"):
        registry.get("timm")


def test_failed_plugins_are_mentioned_for_unknown_names() -> None:
    registry = Registry("dataset")
    registry.unavailable_plugins["acme-data"] = "ImportError: no module named foo"
    with pytest.raises(UnknownComponentError, match=r"acme-data.*failed to load"):
        registry.get("anything")


def test_wrong_spec_type_is_rejected() -> None:
    registry = Registry("backbone")
    with pytest.raises(PluginError, match="use BackboneSpec"):
        registry.register(DatasetSpec(name="x", factory="m:f"), owner="p")


def test_spec_validation() -> None:
    with pytest.raises(PluginError, match="module:function"):
        BackboneSpec(name="x", factory="no_colon")
    with pytest.raises(PluginError, match="modality"):
        BackboneSpec(name="x", factory="m:f", modality="smell")
    with pytest.raises(PluginError, match="cannot import"):
        BackboneSpec(name="x", factory="no_such_module_xyz:f").load_factory()

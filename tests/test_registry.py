from __future__ import annotations

import pytest

from polygraft.errors import DuplicateComponentError, PluginError, UnknownComponentError
from polygraft.registry import Registry
from polygraft.specs import BackboneSpec, DatasetSpec


def backbone(name: str) -> BackboneSpec:
    return BackboneSpec(name=name, factory="somewhere:create", modality="vision")


@pytest.mark.parametrize("first_party_first", [True, False])
def test_a_contested_name_stays_first_party_in_either_order(first_party_first: bool) -> None:
    registry = Registry("backbone", first_party={"polygraft-vision"})
    claims = [(backbone("resnet"), "polygraft-vision"), (backbone("resnet"), "acme-vision")]
    for spec, owner in claims if first_party_first else claims[::-1]:
        registry.register(spec, owner=owner)
    assert registry.owner("resnet") == "polygraft-vision"
    assert registry.owner("acme-vision:resnet") == "acme-vision"  # the other claim, by its qualified name
    assert {c.owner for c in registry.contested()["resnet"]} == {"polygraft-vision", "acme-vision"}


@pytest.mark.parametrize("order", [("a", "b"), ("b", "a")])
def test_two_third_party_claims_make_the_bare_name_ambiguous(order: tuple[str, str]) -> None:
    registry = Registry("backbone")
    for owner in order:
        registry.register(backbone("resnet"), owner=owner)
    with pytest.raises(DuplicateComponentError, match=r"'a:resnet', 'b:resnet'|'b:resnet', 'a:resnet'"):
        registry.get("resnet")
    assert registry.owner("a:resnet") == "a" and registry.owner("b:resnet") == "b"
    assert registry.names() == []  # listing shows neither under the bare name


@pytest.mark.parametrize("order", [("a", "b"), ("b", "a")])
def test_replace_true_overrides_on_purpose_in_either_order(order: tuple[str, str]) -> None:
    registry = Registry("backbone", first_party={"a"})
    for owner in order:
        registry.register(backbone("resnet"), owner=owner, replace=owner == "b")
    assert registry.owner("resnet") == "b"
    assert registry.stable_name("resnet") == "resnet" and registry.stable_name("a:resnet") == "a:resnet"


def test_one_plugin_registering_a_name_twice_is_an_error() -> None:
    registry = Registry("backbone")
    registry.register(backbone("resnet"), owner="a")
    with pytest.raises(DuplicateComponentError, match="registers the backbone name 'resnet' twice"):
        registry.register(backbone("resnet"), owner="a")


def test_aliases_find_the_component() -> None:
    registry = Registry("backbone")
    registry.register(BackboneSpec(name="layer-wise", factory="m:f", aliases=("lw",)), owner="a")
    assert registry.get("lw").name == "layer-wise"
    assert registry.names() == ["layer-wise"]


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
    assert BackboneSpec(name="x", factory="m:f", modality="smell").modality == "smell"  # modalities are open
    with pytest.raises(PluginError, match="modality"):
        BackboneSpec(name="x", factory="m:f", modality="Smell it!")
    with pytest.raises(PluginError, match="cannot import"):
        BackboneSpec(name="x", factory="no_such_module_xyz:f").load_factory()

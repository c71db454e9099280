"""The timm backbone: conformance, feature maps, layer groups, preprocessing and weights loading."""

from __future__ import annotations

import pickle

import pytest
import timm
import torch
from PIL import Image
from safetensors.torch import save_file

import polygraft
from polygraft.errors import ConfigError, WeightsError
from polygraft.testing import check_backbone

EXAMPLES = [{"image": Image.new("RGB", (48, 40), "red")}, {"image": Image.new("L", (30, 30), 90)}]


@pytest.mark.parametrize("options", [
    {"model_name": "test_resnet", "image_size": 32},
    {"model_name": "test_efficientnet", "image_size": 32},
    {"model_name": "test_resnet", "image_size": 64, "features": "maps"},
    {"model_name": "test_efficientnet", "image_size": 64, "features": "maps", "out_indices": [2, 3, 4]},
])
def test_conformance(catalog, options):
    backbone = check_backbone(catalog, "timm", options=options, examples=EXAMPLES)
    assert backbone.modality == "vision"


def test_maps_highest_resolution_first(catalog):
    backbone = polygraft.create_backbone("timm", catalog=catalog, model_name="test_resnet", features="maps",
                                         image_size=64)
    pre = backbone.preprocessor
    features = backbone(pre.collate([pre(example) for example in EXAMPLES]))
    assert [m.shape[-1] for m in features.maps] == [64 // s for s in backbone.map_strides]
    assert features.strides == list(backbone.map_strides)


def test_layer_groups_are_ordered_stages(catalog):
    backbone = polygraft.create_backbone("timm", catalog=catalog, model_name="test_efficientnet")
    groups = backbone.layer_groups()
    first = {id(p) for p in groups[0].parameters()}
    assert first == {id(p) for p in (*backbone.model.conv_stem.parameters(), *backbone.model.bn1.parameters())}
    covered = [id(p) for g in groups for p in g.parameters()]
    assert len(covered) == len(set(covered)) == len(list(backbone.parameters()))  # every parameter, once
    assert id(backbone.model.conv_head.weight) in {id(p) for p in groups[-1].parameters()}  # head side last


def test_preprocessor_from_timm_config(catalog):
    backbone = polygraft.create_backbone("timm", catalog=catalog, model_name="test_resnet", image_size=40,
                                         mean=[0.5, 0.5, 0.5], std=[0.5, 0.5, 0.5])
    pre = pickle.loads(pickle.dumps(backbone.preprocessor))
    assert pre.describe()["input_size"] == [3, 40, 40] and pre.mean == (0.5, 0.5, 0.5)
    white = pre({"image": Image.new("RGB", (50, 60), "white")})["pixel_values"]
    assert white.shape == (3, 40, 40) and torch.allclose(white, torch.ones_like(white), atol=1e-2)
    train = pre.for_training(auto_augment="rand-m9-mstd0.5")
    assert train({"image": Image.new("RGB", (50, 60))})["pixel_values"].shape == (3, 40, 40)
    dense = pre.for_dense_prediction()
    assert dense({"image": Image.new("RGB", (80, 20))})["pixel_values"].shape == (3, 40, 40)  # no crop
    pickle.dumps(train)


def test_local_weights_safetensors_and_torch(catalog, tmp_path):
    source = timm.create_model("test_resnet", num_classes=7)
    save_file(source.state_dict(), str(tmp_path / "w.safetensors"))
    torch.save(source.state_dict(), tmp_path / "w.pth")
    for path in ("w.safetensors", "w.pth"):
        backbone = polygraft.create_backbone("timm", catalog=catalog, weights=str(tmp_path / path),
                                             model_name="test_resnet")
        assert torch.equal(backbone.model.conv1[0].weight, source.conv1[0].weight)
    maps = polygraft.create_backbone("timm", catalog=catalog, weights=str(tmp_path / "w.pth"),
                                     model_name="test_resnet", features="maps")
    assert torch.equal(maps.model.layer4[0].conv1.weight, source.layer4[0].conv1.weight)
    head = polygraft.create_backbone("timm", catalog=catalog, weights=str(tmp_path / "w.pth"),
                                     model_name="test_resnet", num_classes=7)
    assert torch.equal(head.model.fc.weight, source.fc.weight)


def test_weights_for_another_model_fail_clearly(catalog, tmp_path):
    torch.save(timm.create_model("test_efficientnet").state_dict(), tmp_path / "other.pth")
    with pytest.raises(WeightsError, match="do not fit the model"):
        polygraft.create_backbone("timm", catalog=catalog, weights=str(tmp_path / "other.pth"),
                                  model_name="test_resnet")
    with pytest.raises(WeightsError, match="positional remap"):
        polygraft.create_backbone("timm", catalog=catalog, weights=str(tmp_path / "other.pth"),
                                  model_name="test_resnet", remap="positional")


def test_pickled_objects_are_refused(catalog, tmp_path):
    torch.save({"weight": torch.zeros(1), "evil": object()}, tmp_path / "evil.pth")
    with pytest.raises(WeightsError, match="weights-only"):
        polygraft.create_backbone("timm", catalog=catalog, weights=str(tmp_path / "evil.pth"),
                                  model_name="test_resnet")


def test_hub_needs_network(catalog, monkeypatch):
    monkeypatch.delenv("POLYGRAFT_ALLOW_NETWORK", raising=False)
    with pytest.raises(WeightsError, match="POLYGRAFT_ALLOW_NETWORK"):
        polygraft.create_backbone("timm", catalog=catalog, weights="timm/resnet18.a1_in1k", model_name="resnet18")


def test_bad_options(catalog):
    with pytest.raises(ConfigError, match="model_name"):
        polygraft.create_backbone("timm", catalog=catalog)
    with pytest.raises(ConfigError, match="no model 'resnet_nope'"):
        polygraft.create_backbone("timm", catalog=catalog, model_name="resnet_nope")
    with pytest.raises(ConfigError, match="features"):
        polygraft.create_backbone("timm", catalog=catalog, model_name="test_resnet", features="tokens")


def test_export_round_trip(catalog, tmp_path):
    from polygraft.model_io import save_model

    task = polygraft.create_task("classification", catalog=catalog, backbone="timm", label_names=["a", "b"],
                                 backbone_options={"model_name": "test_resnet", "image_size": 32})
    loaded = polygraft.load(save_model(task, tmp_path / "model"), catalog=catalog)
    batch = loaded.collate([loaded.prepare_example(EXAMPLES[0])])
    task.eval()
    with torch.no_grad():
        assert torch.allclose(task(batch | {"labels": torch.tensor([0])}).outputs,
                              loaded(batch | {"labels": torch.tensor([0])}).outputs)


def test_read_input_opens_and_checks_files(catalog, tmp_path, write_image):
    from polygraft.errors import DataError

    pre = polygraft.create_backbone("timm", catalog=catalog, model_name="test_resnet", image_size=32).preprocessor
    example = pre.read_input(str(write_image(tmp_path / "x.png", mode="RGBA", colour=(0, 0, 255, 255))))
    assert example["image"].mode == "RGB" and pre(example)["pixel_values"].shape == (3, 32, 32)
    (tmp_path / "bad.png").write_text("no")
    with pytest.raises(DataError, match=r"bad\.png"):
        pre.read_input(str(tmp_path / "bad.png"))


def test_classification_augment_uses_timms_training_transform(catalog):

    image = Image.radial_gradient("L").convert("RGB").resize((48, 48))
    task = polygraft.create_task("classification", catalog=catalog, backbone="timm", label_names=["a", "b"],
                                 backbone_options={"model_name": "test_resnet", "image_size": 32},
                                 augment={"auto_augment": "rand-m9-mstd0.5"})
    train, evaluation = task.data_pipeline(training=True), task.data_pipeline(training=False)
    assert "RandAugment" in repr(train.preprocessor._build())
    torch.manual_seed(0)
    views = [train.prepare({"image": image, "label": "a"})["inputs"]["pixel_values"] for _ in range(2)]
    assert not torch.equal(views[0], views[1])  # random crops / RandAugment differ per call
    fixed = [evaluation.prepare({"image": image, "label": "a"})["inputs"]["pixel_values"] for _ in range(2)]
    assert torch.equal(fixed[0], fixed[1])
    plain = polygraft.create_task("classification", catalog=catalog, backbone="timm", label_names=["a", "b"],
                                  backbone_options={"model_name": "test_resnet", "image_size": 32})
    assert plain.data_pipeline(training=True).preprocessor is plain.backbone.preprocessor  # off by default

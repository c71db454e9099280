"""Real packaged ImageNet weights: skimage's coffee photo is an espresso."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch
from PIL import Image

import polygraft


def coffee() -> Image.Image:
    spec = importlib.util.find_spec("skimage")
    if spec is None:
        pytest.skip("scikit-image (which ships the coffee photo) is not installed")
    return Image.open(Path(next(iter(spec.submodule_search_locations))) / "data" / "coffee.png")


@pytest.mark.parametrize("alias", ["efficientnet-lite0-imagenet", "mobilenetv2-imagenet"])
def test_coffee_is_espresso(catalog, alias):
    from timm.data import ImageNetInfo

    backbone = polygraft.create_backbone("timm", catalog=catalog, weights=alias, num_classes=1000).eval()
    pre = backbone.preprocessor
    with torch.no_grad():
        probabilities = backbone.classify(pre.collate([pre({"image": coffee()})])).softmax(-1)[0]
    best = int(probabilities.argmax())
    assert ImageNetInfo().index_to_description(best) == "espresso"
    assert float(probabilities[best]) > 0.8


def test_alias_headless_and_maps(catalog):
    backbone = polygraft.create_backbone("timm", catalog=catalog, weights="efficientnet-lite0-imagenet",
                                         features="maps", image_size=64)
    assert backbone.map_channels == (16, 24, 40, 112, 320)
    assert backbone.preprocessor.mean == (0.5, 0.5, 0.5)

"""The trainer's input cache with real image data: image-folder fingerprints, a disk cache invalidated by a changed
file or option, and augmented training that keeps decoded images but still augments every epoch."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import polygraft
from polygraft.inputs.cache.plan import InputCache
from polygraft.interfaces import Callback
from polygraft_vision.preprocess import ImagePreprocessor


@pytest.fixture(autouse=True)
def cache_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("POLYGRAFT_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    for label in ("a", "b"):
        (tmp_path / "images" / label).mkdir(parents=True)
        for i in range(6):
            pixels = rng.integers(0, 255, (20, 20, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(tmp_path / "images" / label / f"{i}.png")
    return tmp_path / "images"


def task(catalog, **options):
    torch.manual_seed(0)
    return polygraft.create_task("classification", backbone="timm", catalog=catalog, label_names=["a", "b"],
                                 backbone_options={"model_name": "test_resnet", "image_size": 32}, **options)


def test_preprocessor_modes_and_fingerprints() -> None:
    evaluation = ImagePreprocessor(input_size=(3, 32, 32))
    assert evaluation.deterministic and evaluation.for_dense_prediction().deterministic
    assert not evaluation.for_training().deterministic
    assert evaluation.fingerprint() == ImagePreprocessor(input_size=(3, 32, 32)).fingerprint()
    assert evaluation.fingerprint() != ImagePreprocessor(input_size=(3, 32, 32), crop_pct=1.0).fingerprint()


def test_image_folder_fingerprint_follows_files(catalog, folder: Path) -> None:
    def fingerprint() -> str:
        return polygraft.load_dataset("image-folder", catalog=catalog, path=str(folder)).fingerprint()

    before = fingerprint()
    assert before == fingerprint()
    target = folder / "a" / "3.png"
    stat = target.stat()
    Image.new("RGB", (20, 20), "red").save(target)
    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert fingerprint() != before
    digits = polygraft.load_dataset("digits", catalog=catalog, split="test", seed=0)
    assert digits.storage == "memory" and digits.fingerprint() == polygraft.load_dataset(
        "digits", catalog=catalog, split="test", seed=0).fingerprint()


def test_disk_cache_is_reused_and_invalidated_by_a_changed_file_or_option(catalog, folder: Path) -> None:
    def keep(**backbone):
        source = polygraft.load_dataset("image-folder", catalog=catalog, path=str(folder))
        module = polygraft.create_task("classification", backbone="timm", catalog=catalog, label_names=["a", "b"],
                                       backbone_options={"model_name": "test_resnet", "image_size": 32, **backbone})
        kept = InputCache("disk").prepare(source, module.data_pipeline(training=False), split="val",
                                          training=False, passes=2)
        kept.fresh = module.data_pipeline(training=False).prepare(source[11])["inputs"]["pixel_values"]
        return kept

    first = keep()
    assert first.kind == "disk" and not first.reused and first.count == 12
    again = keep()
    assert again.reused and again.path == first.path
    assert torch.equal(again.dataset[11][1]["inputs"]["pixel_values"], again.fresh)
    assert not keep(crop_pct=1.0).reused  # a changed option
    target = folder / "b" / "5.png"
    Image.new("RGB", (20, 20), "blue").save(target)
    os.utime(target, ns=(0, target.stat().st_mtime_ns + 1_000_000_000))
    changed = keep()
    assert not changed.reused and changed.path != first.path  # a changed file
    assert torch.equal(changed.dataset[11][1]["inputs"]["pixel_values"], changed.fresh)
    assert not torch.equal(changed.fresh, again.fresh)


class Pixels(Callback):
    def __init__(self) -> None:
        self.by_epoch: list[dict[int, torch.Tensor]] = []

    def on_train_epoch_start(self, trainer, epoch) -> None:
        self.by_epoch.append({})

    def on_train_batch_end(self, trainer, batch, output) -> None:
        for row, index in enumerate(batch["meta"]["index"].tolist()):
            self.by_epoch[-1][index] = batch["inputs"]["pixel_values"][row].clone()


def test_augmented_training_keeps_decoded_images_and_augments_every_epoch(catalog, folder: Path,
                                                                          tmp_path: Path) -> None:
    source = polygraft.load_dataset("image-folder", catalog=catalog, path=str(folder))
    pixels = Pixels()
    config = polygraft.TrainerConfig(max_epochs=2, batch_size=4, progress=False)
    trainer = polygraft.Trainer(config, callbacks=[pixels])
    trainer.fit(task(catalog, augment=True), train_data=source, val_data=source)
    train, val = trainer.loaders.cache.splits
    assert train.kind == "decoded" and train.count == 12 and "random" in train.note
    assert val.kind == "memory" and val.count == 12
    first, second = pixels.by_epoch
    assert sorted(first) == sorted(second) == list(range(12))
    assert sum(not torch.equal(first[i], second[i]) for i in range(12)) >= 10  # new augmentations each epoch

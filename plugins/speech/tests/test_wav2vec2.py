"""The wav2vec2 backbone: conformance, frame masks, padding invariance, freezing, SpecAugment, weights, export."""

from __future__ import annotations

import copy
import json
import pickle

import numpy as np
import pytest
import torch

import polygraft
from polygraft.errors import ConfigError, WeightsError
from polygraft.testing import check_backbone, check_plugin_module

RNG = np.random.default_rng(0)
CLIPS = [(0.1 * RNG.standard_normal(n)).astype(np.float32) for n in (16000, 7000, 11000)]
EXAMPLES = [{"audio": clip, "sample_rate": 16000} for clip in CLIPS]


def batch_of(backbone, examples):
    pre = backbone.preprocessor
    return pre.collate([pre(example) for example in examples])


@pytest.mark.parametrize("options", [{"size": "tiny"}, {"size": "tiny", "model_type": "hubert"},
                                     {"size": "tiny", "hidden_size": 48, "num_hidden_layers": 3,
                                      "conv_dim": [16, 16, 16]}])
def test_conformance(catalog, options):
    backbone = check_backbone(catalog, "wav2vec2", options=options, examples=EXAMPLES)
    assert backbone.modality == "speech" and len(backbone.layer_groups()) == backbone.config.num_hidden_layers + 1
    assert backbone.feature_dim == options.get("hidden_size", 32)


def test_features_shapes_and_frame_mask(catalog):
    backbone = polygraft.create_backbone("wav2vec2", catalog=catalog, size="tiny").eval()
    with torch.no_grad():
        features = backbone(batch_of(backbone, EXAMPLES))
    expected = [int(backbone.model._get_feat_extract_output_lengths(torch.tensor(len(c)))) for c in CLIPS]
    assert expected[0] == 49  # 320x downsampling, as wav2vec2
    assert features.sequence.shape == (3, 49, 32) and features.pooled.shape == (3, 32)
    assert features.mask.dtype == torch.bool and features.mask.sum(1).tolist() == expected
    assert not features.mask[1, expected[1]:].any() and features.mask[1, : expected[1]].all()


def test_pooled_is_the_same_alone_and_padded(catalog):
    backbone = polygraft.create_backbone("wav2vec2", catalog=catalog, size="tiny").eval()
    with torch.no_grad():
        together = backbone(batch_of(backbone, EXAMPLES))
        for row, example in enumerate(EXAMPLES):
            alone = backbone(batch_of(backbone, [example]))
            frames = int(alone.mask.sum())
            assert torch.allclose(alone.pooled[0], together.pooled[row], atol=1e-5)
            assert torch.allclose(alone.sequence[0, :frames], together.sequence[row, :frames], atol=1e-5)


def test_layer_groups_cover_every_parameter_in_order(catalog):
    backbone = polygraft.create_backbone("wav2vec2", catalog=catalog, size="tiny")
    groups = backbone.layer_groups()
    covered = [id(p) for group in groups for p in group.parameters()]
    assert len(covered) == len(set(covered)) == len(list(backbone.parameters()))
    first = {id(p) for p in groups[0].parameters()}
    assert {id(p) for p in backbone.model.feature_extractor.parameters()} <= first
    assert id(backbone.model.masked_spec_embed) in first
    assert id(backbone.model.encoder.layer_norm.weight) in {id(p) for p in groups[-1].parameters()}  # pre-LN: last


def test_freeze_feature_encoder_survives_unfreeze(catalog):
    backbone = polygraft.create_backbone("wav2vec2", catalog=catalog, size="tiny", freeze_feature_encoder=True)
    conv = list(backbone.model.feature_extractor.parameters())
    assert not any(p.requires_grad for p in conv)
    assert all(p.requires_grad for p in backbone.model.encoder.parameters())
    backbone.unfreeze()
    assert not any(p.requires_grad for p in conv)
    backbone.freeze(len(backbone.layer_groups()))
    assert not any(p.requires_grad for p in conv)
    assert backbone.model.feature_projection.projection.weight.requires_grad
    plain = polygraft.create_backbone("wav2vec2", catalog=catalog, size="tiny")
    assert all(p.requires_grad for p in plain.model.feature_extractor.parameters())


def test_mask_embedding_trains_only_when_used(catalog):
    plain = polygraft.create_backbone("wav2vec2", catalog=catalog, size="tiny")
    plain.unfreeze()
    assert not plain.model.masked_spec_embed.requires_grad  # unused without SpecAugment: no DDP unused-param error
    assert all(p.requires_grad for n, p in plain.named_parameters() if "masked_spec_embed" not in n)
    plain.train_mask_embedding = True  # an objective that passes mask_time_indices
    plain.unfreeze()
    assert plain.model.masked_spec_embed.requires_grad
    masked = polygraft.create_backbone("wav2vec2", catalog=catalog, size="tiny", mask_time_prob=0.1)
    assert masked.model.masked_spec_embed.requires_grad


def test_spec_augment_only_in_training(catalog):
    backbone = polygraft.create_backbone("wav2vec2", catalog=catalog, size="tiny", mask_time_prob=0.5,
                                         mask_time_length=5, mask_feature_prob=0.3, mask_feature_length=4)
    batch = batch_of(backbone, EXAMPLES[:1])
    backbone.eval()
    with torch.no_grad():
        assert torch.equal(backbone(batch).sequence, backbone(batch).sequence)
    backbone.train()
    backbone.model.config.hidden_dropout = backbone.model.config.attention_dropout = 0.0
    torch.manual_seed(0)
    with torch.no_grad():
        masked = backbone(batch).sequence
    off = polygraft.create_backbone("wav2vec2", catalog=catalog, size="tiny")
    assert off.model.config.mask_time_prob == 0.0 and off.model.config.mask_feature_prob == 0.0
    assert {n for n, _ in off.named_parameters()} == {n for n, _ in backbone.named_parameters()}  # same parameters
    backbone.eval()
    with torch.no_grad():
        assert not torch.allclose(masked, backbone(batch).sequence)


def test_export_rebuild_from_a_saved_model(catalog, tmp_path):
    from polygraft.model_io import save_model

    task = polygraft.create_task("classification", catalog=catalog, backbone="wav2vec2", label_names=["a", "b"],
                                 backbone_options={"size": "tiny", "num_hidden_layers": 1,
                                                   "freeze_feature_encoder": True, "normalize": False})
    directory = save_model(task, tmp_path / "model")
    saved = json.loads((directory / "polygraft.json").read_text())
    assert (directory / saved["backbone"]["options"]["config"] / "config.json").is_file()
    rebuilt = polygraft.create_backbone("wav2vec2", catalog=catalog, weights=str(directory)).eval()
    assert rebuilt.freeze_feature_encoder and not rebuilt.preprocessor.normalize
    assert rebuilt.config.num_hidden_layers == 1
    task.backbone.eval()
    batch = batch_of(task.backbone, EXAMPLES)
    with torch.no_grad():
        assert torch.allclose(task.backbone(batch).pooled, rebuilt(batch).pooled, atol=1e-6)
    loaded = polygraft.load(directory, catalog=catalog)
    assert loaded.backbone.preprocessor.describe() == task.backbone.preprocessor.describe()


def test_hugging_face_directory_loads_with_safetensors(catalog, tmp_path):
    from transformers import Wav2Vec2ForCTC

    source = polygraft.create_backbone("wav2vec2", catalog=catalog, size="tiny")
    config = copy.deepcopy(source.config)
    config.mask_time_prob = 0.05  # as real checkpoints: HF then keeps the mask embedding
    ctc = Wav2Vec2ForCTC(config)  # a fine-tuned-style checkpoint: weights under "wav2vec2." plus a head
    ctc.wav2vec2.load_state_dict(source.model.state_dict())
    ctc.save_pretrained(str(tmp_path / "hf"))
    (tmp_path / "hf" / "preprocessor_config.json").write_text('{"sampling_rate": 16000, "do_normalize": false}')
    assert (tmp_path / "hf" / "model.safetensors").is_file()
    loaded = polygraft.create_backbone("wav2vec2", catalog=catalog, weights=str(tmp_path / "hf"))
    assert torch.equal(loaded.model.encoder.layers[0].attention.q_proj.weight,
                       source.model.encoder.layers[0].attention.q_proj.weight)
    assert loaded.preprocessor.normalize is False and loaded.weights_report["source"] == str(tmp_path / "hf")


def test_weights_only_torch_file_loads_and_pickles_are_refused(catalog, tmp_path):
    source = polygraft.create_backbone("wav2vec2", catalog=catalog, size="tiny")
    good = tmp_path / "good"
    source.model.config.save_pretrained(str(good))
    torch.save(source.model.state_dict(), good / "pytorch_model.bin")
    loaded = polygraft.create_backbone("wav2vec2", catalog=catalog, weights=str(good))
    assert torch.equal(loaded.model.feature_projection.projection.weight,
                       source.model.feature_projection.projection.weight)
    evil = tmp_path / "evil"
    source.model.config.save_pretrained(str(evil))
    torch.save({**source.model.state_dict(), "payload": object()}, evil / "pytorch_model.bin")
    with pytest.raises(WeightsError, match="pickled Python objects"):
        polygraft.create_backbone("wav2vec2", catalog=catalog, weights=str(evil))


def test_weights_errors(catalog, tmp_path):
    with pytest.raises(WeightsError, match=r"no config\.json"):
        polygraft.create_backbone("wav2vec2", catalog=catalog, weights=str(tmp_path))
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(WeightsError, match="not a wav2vec2-family encoder"):
        polygraft.create_backbone("wav2vec2", catalog=catalog, weights=str(tmp_path))
    polygraft.create_backbone("wav2vec2", catalog=catalog, size="tiny").model.config.save_pretrained(str(tmp_path))
    with pytest.raises(WeightsError, match=r"no model\.safetensors or pytorch_model\.bin"):
        polygraft.create_backbone("wav2vec2", catalog=catalog, weights=str(tmp_path))
    other = polygraft.create_backbone("wav2vec2", catalog=catalog, size="tiny", hidden_size=64, conv_dim=[8, 8, 8])
    other.model.save_pretrained(str(tmp_path / "other"))
    (tmp_path / "other" / "config.json").write_text((tmp_path / "config.json").read_text())
    with pytest.raises(WeightsError, match="cannot load wav2vec2 weights"):
        polygraft.create_backbone("wav2vec2", catalog=catalog, weights=str(tmp_path / "other"))


@pytest.mark.parametrize(("options", "message"), [
    ({"size": "huge"}, "size must be one of"),
    ({"model_type": "whisper"}, "model_type must be one of"),
    ({"size": "tiny", "conv_dim": [8, 8]}, "conv_dim needs 3 entries"),
    ({"size": "tiny", "hidden_size": 30}, "must be divisible by"),
    ({"mask_time_prob": 1.5}, r"mask_time_prob must be in \[0, 1\)"),
    ({"config": "x", "size": "tiny"}, "not both"),
])
def test_bad_options(catalog, options, message):
    with pytest.raises(ConfigError, match=message):
        polygraft.create_backbone("wav2vec2", catalog=catalog, **options)


def test_plugin_module_is_light():
    check_plugin_module("polygraft_speech.plugin")


def test_classification_step_on_spoken_digits(tiny_digits, catalog, digits_cache):
    source = polygraft.load_dataset("spoken-digits", catalog=catalog, split="val", cache_dir=str(digits_cache),
                                    **tiny_digits)
    source = pickle.loads(pickle.dumps(source))  # travels to DataLoader workers
    task = polygraft.create_task("classification", catalog=catalog, backbone="wav2vec2",
                                 label_names=source.label_names, backbone_options={"size": "tiny"},
                                 augment={"snr_db": [15, 25]})
    pipeline = task.data_pipeline(training=True)
    assert pipeline.preprocessor.noise and pipeline.lengths(source)[0] == round(source.durations()[0] * 16000)
    batch = pipeline.collate([pipeline.prepare(source[i]) for i in range(4)])
    output = task(batch)
    output.loss.backward()
    assert torch.isfinite(output.loss) and output.outputs.shape == (4, 10)
    assert task.backbone.model.encoder.layers[0].attention.q_proj.weight.grad is not None

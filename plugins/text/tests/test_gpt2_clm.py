"""Backbone ``gpt2`` and objective ``clm``: begin/end tokens, pooling, the loss against transformers' own,
perplexity over batches, generation (greedy = argmax loop, seeded top-k), pretrain → predict → finetune, and a
local GPT-2 directory with its byte-level BPE tokenizer."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

import polygraft
from polygraft.cli import main
from polygraft.errors import ConfigError

TEXTS = ["the cat sat on the mat", "a good film", "john went to paris and the dog ran in the park"]


@pytest.fixture
def gpt(vocab_file: Path) -> dict:
    return {"tokenizer": str(vocab_file), "size": "test", "max_length": 32}


@pytest.fixture
def clm(catalog, gpt):
    torch.manual_seed(0)
    return polygraft.create_objective("clm", backbone="gpt2", backbone_options=gpt, catalog=catalog)


def test_texts_start_and_end_with_special_tokens_and_pool_on_the_last_one(catalog, gpt) -> None:
    torch.manual_seed(0)
    backbone = polygraft.create_backbone("gpt2", catalog=catalog, **gpt)
    pre = backbone.preprocessor
    items = [pre({"text": t}) for t in TEXTS]
    assert all(i["input_ids"][0] == pre.bos_id and i["input_ids"][-1] == pre.eos_id for i in items)
    inputs = pre.collate(items)
    backbone.eval()
    features = backbone(inputs)
    lengths = inputs["attention_mask"].sum(1)
    for row in range(len(TEXTS)):
        assert torch.equal(features.pooled[row], features.sequence[row, lengths[row] - 1])
    single = backbone(pre.collate([items[1]]))  # padding changes nothing before it (causal attention)
    assert torch.allclose(single.pooled[0], features.pooled[1], atol=1e-5)
    mean = polygraft.create_backbone("gpt2", catalog=catalog, **{**gpt, "pooling": "mean"})
    mean.load_state_dict(backbone.state_dict())
    mean.eval()
    masked_mean = polygraft.Features(sequence=features.sequence, mask=features.mask).pool()
    assert torch.allclose(mean(inputs).pooled, masked_mean, atol=1e-6)
    long = pre({"text": " ".join(["the cat"] * 40)})
    assert len(long["input_ids"]) == 32 and long["truncated"] and long["input_ids"][-1] == pre.eos_id


def test_loss_is_transformers_causal_lm_loss_and_perplexity_sums_tokens(clm) -> None:
    clm.eval()
    pipe = clm.data_pipeline(training=False)
    batch = pipe.collate([pipe.prepare({"text": t}) for t in TEXTS])
    ids, mask = batch["inputs"]["input_ids"], batch["inputs"]["attention_mask"]
    reference = clm.backbone.model(input_ids=ids, attention_mask=mask, labels=ids.masked_fill(mask == 0, -100)).loss
    with torch.no_grad():
        assert float(clm(batch).loss) == pytest.approx(float(reference), rel=1e-5)
    clm.reset_metrics()
    nll, tokens = 0.0, 0
    with torch.no_grad():
        for text in TEXTS:  # batches of different lengths: the metric weights tokens, not batches
            one = pipe.collate([pipe.prepare({"text": text})])
            output = clm(one)
            clm.update_metrics(one, output)
            n = int(one["inputs"]["attention_mask"].sum()) - 1
            nll, tokens = nll + float(output.loss) * n, tokens + n
    metrics = clm.compute_metrics()
    assert metrics["tokens"] == tokens
    assert metrics["clm_loss"] == pytest.approx(nll / tokens, rel=1e-5)
    assert metrics["perplexity"] == pytest.approx(math.exp(nll / tokens), rel=1e-5)


def _argmax_continuation(clm, prompt: list[int], steps: int) -> list[int]:
    ids = list(prompt)
    with torch.no_grad():
        for _ in range(steps):
            hidden = clm.backbone({"input_ids": torch.tensor([ids]), "attention_mask": torch.ones(1, len(ids))})
            next_id = int(clm.backbone.lm_head(hidden.sequence[0, -1]).argmax())
            ids.append(next_id)
            if next_id == clm.backbone.preprocessor.eos_id:
                break
    return ids[len(prompt):]


def test_greedy_generation_is_the_argmax_loop_and_top_k_is_seeded(clm) -> None:
    clm.eval()
    pipe = clm.data_pipeline(training=False)
    batch = pipe.collate([pipe.prepare({"text": "the cat", "max_new_tokens": "6"})])
    (result,) = clm.predict(batch)
    prompt = batch["inputs"]["input_ids"][0, :-1].tolist()  # the end token is dropped to continue the text
    expected = _argmax_continuation(clm, prompt, 6)
    tokenizer = clm.backbone.preprocessor.tokenizer
    assert result["continuation"] == tokenizer.decode(expected, skip_special_tokens=True,
                                                      clean_up_tokenization_spaces=True)
    assert result["tokens"] == len(expected) and result["text"].startswith("the cat")

    def sample(seed: str, top_k: str = "5") -> dict:
        one = pipe.collate([pipe.prepare({"text": "the cat", "top_k": top_k, "seed": seed, "max_new_tokens": "8"})])
        return clm.predict(one)[0]

    assert sample("3") == sample("3")
    assert sample("1", top_k="1")["continuation"] == clm.predict(
        pipe.collate([pipe.prepare({"text": "the cat", "max_new_tokens": "8"})]))[0]["continuation"]
    with pytest.raises(ConfigError, match="top_k"):
        pipe.prepare({"text": "the cat", "top_k": "-2"})


def test_pretrain_predict_then_finetune_from_the_run(catalog, gpt, tmp_path: Path, capsys) -> None:
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(["the cat sat on the mat"] * 16) + "\n")
    recipe = {"objective": "clm", "backbone": "gpt2", "backbone_options": gpt,
              "objective_options": {"max_new_tokens": 5},
              "data": {"train": {"dataset": "text-lines", "path": str(corpus)},
                       "val": {"dataset": "text-lines", "path": str(corpus)}},
              "trainer": {"max_steps": 60, "batch_size": 8, "lr": 1e-2, "progress": False, "num_workers": 0,
                          "warmup_ratio": 0.0, "schedule": "constant"},
              "output_dir": str(tmp_path / "clm")}
    result = polygraft.run_recipe(polygraft.Recipe.from_dict(recipe), catalog=catalog)
    assert result.metrics["val/perplexity"] < 2.0 and result.metrics["val/token_accuracy"] > 0.9
    capsys.readouterr()
    assert main(["predict", str(tmp_path / "clm"), "the cat sat", "--json"]) == 0
    (generated,) = json.loads(capsys.readouterr().out)  # always a list, one entry per input
    assert generated["continuation"].startswith("on the mat") and generated["stopped"] == "end"
    assert main(["predict", str(tmp_path / "clm"), "--field", "text=the cat", "--field", "max_new_tokens=1"]) == 0
    assert capsys.readouterr().out.strip() == "the cat sat"

    labelled = tmp_path / "reviews.csv"
    labelled.write_text("text,label\nthe cat sat,pos\na bad film,neg\nthe mat,pos\nawful movie,neg\n")
    finetune = {"task": "classification", "backbone": "gpt2", "weights": str(tmp_path / "clm"),
                "backbone_options": {"pooling": "mean"},
                "data": {"train": {"dataset": "text-csv", "path": str(labelled)}},
                "trainer": {"max_steps": 1, "batch_size": 4, "lr": 0.0, "progress": False, "num_workers": 0},
                "output_dir": str(tmp_path / "sentiment")}
    polygraft.run_recipe(polygraft.Recipe.from_dict(finetune), catalog=catalog)
    pretrained = polygraft.load(tmp_path / "clm", catalog=catalog).state_dict()
    tuned = polygraft.load(tmp_path / "sentiment", catalog=catalog)
    assert tuned.backbone.pooling == "mean"
    for key, value in pretrained.items():
        assert torch.equal(tuned.backbone.state_dict()[key], value), key


def test_mlm_runs_have_nothing_to_predict(catalog, tiny, tmp_path: Path, capsys) -> None:
    from polygraft.model_io import save_model

    objective = polygraft.create_objective("mlm", backbone="bert", backbone_options=tiny, catalog=catalog)
    save_model(objective, tmp_path / "mlm" / "model")
    assert main(["predict", str(tmp_path / "mlm"), "a good film"]) == 2
    assert "fine-tune it" in capsys.readouterr().err


def test_a_local_gpt2_directory_with_its_bpe_tokenizer(catalog, tmp_path: Path) -> None:
    from tokenizers import ByteLevelBPETokenizer
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(TEXTS * 5, vocab_size=300, min_frequency=1, special_tokens=["<|endoftext|>"])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token="<|endoftext|>", eos_token="<|endoftext|>")
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=len(tokenizer), n_embd=32, n_layer=2, n_head=2, n_positions=64))
    model.save_pretrained(tmp_path / "gpt2-dir")
    tokenizer.save_pretrained(tmp_path / "gpt2-dir")
    backbone = polygraft.create_backbone("gpt2", weights=str(tmp_path / "gpt2-dir"), catalog=catalog)
    pre = backbone.preprocessor
    end = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    assert pre.bos_id == pre.eos_id == pre.pad_token_id == end
    item = pre({"text": "the cat sat"})
    assert item["input_ids"][0] == end and item["input_ids"][-1] == end
    assert torch.equal(backbone.model.transformer.wte.weight, model.transformer.wte.weight)
    assert backbone.lm_head.weight is backbone.model.get_input_embeddings().weight
    assert len(backbone.layer_groups()) == 3
    with pytest.raises(ConfigError, match="not both"):
        polygraft.create_backbone("gpt2", weights=str(tmp_path / "gpt2-dir"), size="tiny", catalog=catalog)


def test_option_mistakes(catalog, vocab_file: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="tokenizer"):
        polygraft.create_backbone("gpt2", catalog=catalog)
    with pytest.raises(ConfigError, match="size must be one of"):
        polygraft.create_backbone("gpt2", tokenizer=str(vocab_file), size="huge", catalog=catalog)
    with pytest.raises(ConfigError, match="pooling"):
        polygraft.create_backbone("gpt2", tokenizer=str(vocab_file), size="test", pooling="cls", catalog=catalog)
    saved = polygraft.create_backbone("gpt2", tokenizer=str(vocab_file), size="test", catalog=catalog)
    saved.export(tmp_path / "exported")
    with pytest.raises(ConfigError, match="disagrees"):
        polygraft.create_backbone("gpt2", config=str(tmp_path / "exported"), size="tiny", catalog=catalog)
    with pytest.raises(ConfigError, match="clm needs"):
        polygraft.create_objective("clm", backbone="bert", catalog=catalog,
                                   backbone_options={"tokenizer": str(vocab_file), "hidden_size": 32,
                                                     "num_hidden_layers": 1, "num_attention_heads": 2,
                                                     "intermediate_size": 32})

"""Text explanations: Integrated Gradients on the embedding layer of a tiny BERT trained on keyword sentences.

The known answer: in ``keyword-sentences`` one keyword decides the label, so a trained model's explanation must
put its largest attribution on that keyword. Completeness, deletion and model randomisation are checked on the
same model; token classification gets one attribution per word.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch

import polygraft
from polygraft.builtin.keywords import KEYWORDS, KeywordSentences
from polygraft.errors import ConfigError
from polygraft.explain import explain, render
from polygraft.explain.checks import deletion, randomised_copy, rank_correlation

TINY = {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 64,
        "pooling": "mean"}


def train(task, examples, *, steps: int, lr: float, seed: int = 0):  # type: ignore[no-untyped-def]
    torch.manual_seed(seed)
    pipeline = task.data_pipeline(training=False)
    prepared = [pipeline.prepare(example) for example in examples]
    optimizer = torch.optim.AdamW(task.parameters(), lr=lr)
    rng = random.Random(seed)
    task.train()
    for _ in range(steps):
        loss = task(pipeline.collate(rng.sample(prepared, 16))).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return task.eval()


@pytest.fixture(scope="module")
def vocab(tmp_path_factory: pytest.TempPathFactory) -> str:
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *KeywordSentences.vocabulary(), "##s"]
    path = tmp_path_factory.mktemp("vocab") / "vocab.txt"
    path.write_text("\n".join(words))
    return str(path)


@pytest.fixture(scope="module")
def keyword_model(vocab: str):  # type: ignore[no-untyped-def]
    task = polygraft.create_task("classification", backbone="bert", label_names=["negative", "neutral", "positive"],
                                 backbone_options={"tokenizer": vocab, **TINY})
    return train(task, list(KeywordSentences(size=400, seed=0)), steps=150, lr=3e-3)


def test_the_deciding_keyword_gets_the_top_attribution(keyword_model) -> None:  # type: ignore[no-untyped-def]
    test = [example for example in KeywordSentences(size=45, seed=0, split="test") if example["keyword"]]
    found, complete = [], []
    for example in test:
        result = explain(keyword_model, example["text"], method="integrated-gradients")
        attribution = result.attributions[0]
        assert attribution.units == example["text"].split()  # tokens merged back to the sentence's words
        found.append(int(np.argmax(attribution.scores)) == example["keyword_index"])
        report = attribution.completeness
        complete.append(report["within_tolerance"])
        assert abs(report["delta"]) <= 0.05 * abs(report["gap"]) or abs(report["delta"]) < 1e-6
    assert np.mean(found) >= 0.9, f"keyword on top in {np.mean(found):.0%} of sentences"
    assert all(complete)


def test_deletion_and_model_randomisation(keyword_model) -> None:  # type: ignore[no-untyped-def]
    randomised = randomised_copy(keyword_model, seed=1)
    drops_top, drops_random, correlations = [], [], []
    for index, example in enumerate(KeywordSentences(size=20, seed=0, split="val")):
        trained = explain(keyword_model, example["text"], method="ig")
        drop = deletion(trained, fraction=0.2, seed=index)
        drops_top.append(drop["drop_top"])
        drops_random.append(drop["drop_random"])
        label = trained.attributions[0].label
        other = explain(randomised, example["text"], method="ig", target=label).attributions[0].scores
        correlations.append(rank_correlation(trained.attributions[0].scores, other))
    assert np.mean(drops_top) > np.mean(drops_random) + 0.1
    assert np.mean(correlations) < 0.3


def test_subwords_merge_into_words_and_the_page_is_written(keyword_model, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    result = explain(keyword_model, "the films was superb", method="occlusion")  # "films" = film + ##s
    attribution = result.attributions[0]
    assert attribution.units == ["the", "films", "was", "superb"]
    assert int(np.argmax(attribution.scores)) == 3
    files = render(result, tmp_path)
    page = next(Path(f) for f in files if f.endswith(".html"))
    assert "superb" in page.read_text() and "films" in page.read_text()
    report = next(Path(f) for f in files if f.endswith(".json")).read_text()
    assert '"superb"' in report and '"methods_that_apply"' in report


def test_target_picks_the_class_and_unknown_targets_are_named(keyword_model) -> None:  # type: ignore[no-untyped-def]
    text = "the old film was dull and the music long"
    neutral = explain(keyword_model, text, target="neutral").attributions[0]
    negative = explain(keyword_model, text, target="negative").attributions[0]
    assert (neutral.label, negative.label) == ("neutral", "negative")
    assert neutral.scores[4] < -1 and negative.scores[4] > 1  # "dull" rules out neutral and makes it negative
    with pytest.raises(ConfigError, match="did you mean 'positive'"):
        explain(keyword_model, "a dull film", target="positiv")


def test_token_classification_explains_every_word(vocab: str) -> None:
    task = polygraft.create_task("token-classification", backbone="bert", label_names=["O", "B-KEY", "I-KEY"],
                                 backbone_options={"tokenizer": vocab, **TINY}).eval()
    result = explain(task, "the film was superb", method="ig")
    assert [a.info["word"] for a in result.attributions] == [0, 1, 2, 3]
    assert all(a.scores.shape == (4,) and a.completeness["within_tolerance"] for a in result.attributions)
    tag = result.prediction["tags"][1]
    kept = explain(task, "the film was superb", method="ig", target=tag).attributions
    assert kept and all(a.label == tag for a in kept)


def test_keyword_sentences_have_a_neutral_class_and_disjoint_splits() -> None:
    train, test = KeywordSentences(size=30, seed=0), KeywordSentences(size=30, seed=0, split="test")
    assert [e["label"] for e in list(train)[:3]] == ["negative", "neutral", "positive"]
    for example in train:
        words = example["text"].split()
        keywords = [w for w in words if w in KEYWORDS["positive"] + KEYWORDS["negative"]]
        if example["label"] == "neutral":
            assert keywords == [] and example["keyword_index"] is None
        else:
            assert keywords == [example["keyword"]] and words[example["keyword_index"]] == example["keyword"]
            assert example["keyword"] in KEYWORDS[example["label"]]
    assert {e["text"] for e in train}.isdisjoint({e["text"] for e in test})
    with pytest.raises(ConfigError, match="split must be one of"):
        KeywordSentences(split="dev")

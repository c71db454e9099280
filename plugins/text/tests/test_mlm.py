"""Objective ``mlm``: BERT masking statistics, training, and its export used as finetune weights."""

from __future__ import annotations

import torch

import polygraft
from polygraft.model_io import save_model
from polygraft_text.mlm import IGNORE, mask_tokens


def test_masking_follows_bert() -> None:
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(10, 100, (64, 128))
    ids[:, 0], ids[:, -1] = 2, 3
    words = torch.arange(128).expand(64, 128).clone() - 1
    words[:, -1] = -1
    masked, labels = mask_tokens(ids, words, mask_id=4, vocab_size=100, generator=generator)
    chosen = labels != IGNORE
    assert not chosen[:, 0].any() and not chosen[:, -1].any()  # special tokens are never chosen
    rate = chosen.float().mean().item()
    assert 0.13 < rate < 0.17
    assert torch.equal(labels[chosen], ids[chosen])
    as_mask = (masked[chosen] == 4).float().mean().item()
    unchanged = (masked[chosen] == ids[chosen]).float().mean().item()
    assert 0.77 < as_mask < 0.83 and 0.08 < unchanged < 0.13


def test_whole_word_masking_masks_all_pieces() -> None:
    ids = torch.arange(10, 10 + 40).expand(200, 40).clone()
    words = (torch.arange(40) // 4).expand(200, 40).clone()  # 4 pieces per word
    _, labels = mask_tokens(ids, words, mask_id=4, vocab_size=60, whole_word=True,
                            generator=torch.Generator().manual_seed(1))
    chosen = (labels != IGNORE).view(200, 10, 4)
    assert torch.equal(chosen.all(-1), chosen.any(-1))
    assert 0.1 < chosen.float().mean().item() < 0.2


def test_mlm_trains_and_exports_a_backbone(catalog, tiny, tmp_path) -> None:
    torch.manual_seed(0)
    objective = polygraft.create_objective("mlm", backbone="bert", backbone_options=tiny, catalog=catalog)
    assert objective.head.predictions.decoder.weight is objective.backbone.model.get_input_embeddings().weight
    texts = ["the cat sat on the mat", "the dog ran in the park", "john lives in new york", "a good film"] * 4
    train = objective.data_pipeline(training=True)
    evaluate = objective.data_pipeline(training=False)
    eval_batch = evaluate.collate([evaluate.prepare({"text": t}) for t in texts])
    assert torch.equal(eval_batch["labels"],
                       evaluate.collate([evaluate.prepare({"text": t}) for t in texts])["labels"])

    def eval_loss() -> float:
        objective.eval()
        objective.reset_metrics()
        with torch.no_grad():
            objective.update_metrics(eval_batch, objective(eval_batch))
        return objective.compute_metrics()["mlm_loss"]

    before = eval_loss()
    optimizer = torch.optim.AdamW(objective.parameters(), lr=3e-3)
    objective.train()
    for _ in range(60):
        batch = train.collate([train.prepare({"text": t}) for t in texts])
        loss = objective(batch).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert eval_loss() < before * 0.6
    assert "masks" in objective.predict(eval_batch)[0]

    save_model(objective, tmp_path / "pretrained")
    task = polygraft.create_task("classification", backbone="bert", weights=str(tmp_path / "pretrained"),
                                 label_names=["a", "b"], catalog=catalog)
    assert torch.equal(task.backbone.model.embeddings.word_embeddings.weight,
                       objective.backbone.model.embeddings.word_embeddings.weight)


def test_train_wordpiece_vocabulary_for_a_small_bert(tmp_path) -> None:
    from polygraft_text.backbone import load_tokenizer
    from polygraft_text.vocab import main, train_wordpiece

    texts = ["a charming and witty film", "a dull, lifeless film", "charming actors in a witty script"] * 20
    tokenizer = load_tokenizer(train_wordpiece(texts, tmp_path / "vocab", vocab_size=80, min_frequency=1))
    assert tokenizer.pad_token_id == 0 and tokenizer.mask_token_id is not None and len(tokenizer) <= 80
    assert tokenizer.tokenize("Charming film") == ["charming", "film"]
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(texts) + "\n")
    assert main([str(tmp_path / "cli"), "--dataset", "text-lines", "--option", f"path={corpus}",
                 "--vocab-size", "80", "--min-frequency", "1"]) == 0
    assert (tmp_path / "cli" / "vocab.txt").is_file()


def test_untied_decoder_trains_input_embeddings_only_where_words_occur(catalog, tiny) -> None:
    torch.manual_seed(0)
    objective = polygraft.create_objective("mlm", backbone="bert", backbone_options=tiny, catalog=catalog,
                                           tie_embeddings=False, mask_probability=0.5)
    embeddings = objective.backbone.model.get_input_embeddings().weight
    assert objective.head.predictions.decoder.weight is not embeddings
    tokenizer = objective.backbone.preprocessor.tokenizer
    unused = tokenizer.convert_tokens_to_ids("paris")  # never in the batch below
    pipeline = objective.data_pipeline(training=True)
    batch = pipeline.collate([pipeline.prepare({"text": t}) for t in ["the cat sat on the mat", "a good film"] * 4])
    objective(batch).loss.backward()
    assert embeddings.grad[unused].abs().sum() == 0  # untied: no softmax push on words that do not occur
    assert objective.head.predictions.decoder.weight.grad[unused].abs().sum() > 0

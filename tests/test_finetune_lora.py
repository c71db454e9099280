"""LoRA through peft on a tiny random-init BertModel wrapped in a minimal Backbone (no tokenizer, no download)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pytest
import torch
from torch import nn

import polygraft
from polygraft.errors import IncompatibleComponentsError
from polygraft.features import Features
from polygraft.finetune import build_strategies
from polygraft.finetune.ema import EMAStrategy
from polygraft.finetune.freezing import LinearProbeStrategy
from polygraft.finetune.lora import LoraStrategy
from polygraft.interfaces.backbone import Backbone
from polygraft.interfaces.preprocessor import Preprocessor
from polygraft.plugins import build_catalog
from polygraft.tasks.classification import ClassificationTask

transformers = pytest.importorskip("transformers")
pytest.importorskip("peft")


class IdsPreprocessor(Preprocessor):
    """Token ids given directly: ``{"ids": [3, 5, 9]}``."""

    def __call__(self, example: Mapping[str, Any]) -> dict[str, Any]:
        return {"input_ids": torch.tensor(example["ids"])}

    def collate(self, items: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        return {"input_ids": torch.stack([item["input_ids"] for item in items])}

    def describe(self) -> dict[str, Any]:
        return {"type": "ids"}


class TinyBert(Backbone):
    modality = "text"

    def __init__(self) -> None:
        super().__init__()
        config = transformers.BertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                         intermediate_size=64, max_position_embeddings=16,
                                         hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
        self.model = transformers.BertModel(config, add_pooling_layer=False)
        self.feature_dim = 32
        self.spec_name = "tiny-bert"

    @property
    def preprocessor(self) -> IdsPreprocessor:
        return IdsPreprocessor()

    def forward(self, inputs: Mapping[str, Any]) -> Features:
        sequence = self.model(input_ids=inputs["input_ids"]).last_hidden_state
        return Features(pooled=sequence[:, 0], sequence=sequence)

    def layer_groups(self) -> list[nn.Module]:
        return [self.model.embeddings, *self.model.encoder.layer]


def make_task() -> ClassificationTask:
    torch.manual_seed(0)
    return ClassificationTask(TinyBert(), label_names=["neg", "pos"], dropout=0.0)


def make_batch(task: ClassificationTask) -> dict[str, Any]:
    generator = torch.Generator().manual_seed(0)
    examples = [{"ids": torch.randint(1, 50, (6,), generator=generator).tolist(), "label": i % 2} for i in range(4)]
    return task.collate([task.prepare_example(e) for e in examples])


def train_step(task: ClassificationTask, batch: dict[str, Any]) -> None:
    optimizer = torch.optim.AdamW(task.parameters(), lr=0.05, weight_decay=0.1)  # every param, like the trainer
    task.train()
    task(batch).loss.backward()
    optimizer.step()


def test_lora_trains_only_adapters_and_head_then_merges():
    task = make_task()
    base_before = {n: p.detach().clone() for n, p in task.backbone.named_parameters()}
    strategy = LoraStrategy(r=4, alpha=8, dropout=0.0)
    strategy.setup(task)
    adapters = strategy.adapter_parameters(task)
    assert len(adapters) == 4  # lora_A / lora_B on query and value of the single layer
    trainable = {n for n, p in task.named_parameters() if p.requires_grad}
    assert trainable == {n for n, _ in task.backbone.named_parameters(prefix="backbone") if "lora_" in n} | {
        n for n, _ in task.head.named_parameters(prefix="head")}

    batch = make_batch(task)
    train_step(task, batch)
    for name, param in task.backbone.named_parameters():
        if "lora_" in name:
            continue
        original = name.replace(".base_layer", "")
        assert param.grad is None, name
        assert torch.equal(param, base_before[original]), f"{name} changed under LoRA"
    assert any(p.abs().sum() > 0 for n, p in task.backbone.named_parameters() if "lora_B" in n)  # adapters moved

    task.eval()
    with torch.no_grad():
        before_merge = task(batch).outputs
    strategy.finalize(task)
    with torch.no_grad():
        after_merge = task(batch).outputs
    assert torch.allclose(before_merge, after_merge, atol=1e-5)
    keys = set(task.backbone.state_dict())
    assert keys == set(base_before), "the merged backbone must have the plain BertModel's weights"
    from peft.tuners.tuners_utils import BaseTunerLayer

    assert not any(isinstance(m, BaseTunerLayer) for m in task.modules())
    query = task.backbone.model.encoder.layer[0].attention.self.query
    assert type(query) is nn.Linear and not torch.equal(query.weight, base_before[
        "model.encoder.layer.0.attention.self.query.weight"])

    plain = TinyBert()  # reloads into a plain backbone
    plain.load_state_dict(task.backbone.state_dict())


def test_lora_rejects_a_backbone_it_cannot_wrap():
    task = polygraft.create_task("classification", backbone="toy", label_names=["a", "b"])
    with pytest.raises(IncompatibleComponentsError, match=r"lora cannot wrap backbone 'toy'.*attribute 'model'"):
        LoraStrategy().setup(task)
    with pytest.raises(IncompatibleComponentsError, match="target_modules"):
        LoraStrategy(target_modules=["no_such_layer"]).setup(make_task())


@pytest.mark.parametrize("order", [("linear-probe", "lora"), ("lora", "linear-probe")])
def test_lora_with_linear_probe_keeps_adapters_trainable(order):
    task = make_task()
    task.backbone.proj = nn.Linear(32, 32)  # a backbone weight outside the HF model: linear-probe freezes it
    made = {"lora": LoraStrategy(r=2, dropout=0.0), "linear-probe": LinearProbeStrategy()}
    for name in order:  # hand-built lists may come in either order
        made[name].setup(task)
    trainable = {n for n, p in task.named_parameters() if p.requires_grad}
    assert any("lora_A" in n for n in trainable) and any(n.startswith("head.") for n in trainable)
    assert all("lora_" in n or n.startswith("head.") for n in trainable), trainable
    names = [s.name for s in build_strategies(list(reversed(order)), build_catalog(autoload=False))]
    assert names == ["linear-probe", "lora"]


def test_ema_finalizes_before_lora_merges():
    task = make_task()
    strategies = build_strategies(["lora", {"name": "ema", "decay": 0.5, "warmup": False}],
                                  build_catalog(autoload=False))
    assert [s.name for s in strategies] == ["ema", "lora"]
    for strategy in strategies:
        strategy.setup(task)
    ema = next(s for s in strategies if isinstance(s, EMAStrategy)).callback
    trainer = type("T", (), {"module": task, "state": type("S", (), {"global_step": 0})(), "max_steps": 2})()
    ema.on_fit_start(trainer)
    batch = make_batch(task)
    for step in (1, 2):
        train_step(task, batch)
        trainer.state.global_step = step
        ema.on_train_step_end(trainer, step, torch.tensor(0.0), {}, None)
    expected = dict(ema.averaged)
    task.eval()
    for strategy in strategies:
        strategy.finalize(task)
    with torch.no_grad():
        merged = task(batch).outputs
    # rebuild the EMA model unmerged by hand and compare outputs
    reference = make_task()
    LoraStrategy(r=8, dropout=0.05).setup(reference)
    result = reference.load_state_dict(expected, strict=False)
    assert not result.unexpected_keys
    assert all(not reference.state_dict()[k].is_floating_point() for k in result.missing_keys)
    reference.eval()
    with torch.no_grad():
        assert torch.allclose(reference(batch).outputs, merged, atol=1e-5)


def test_lora_linear_probe_and_ema_through_the_trainer():
    from peft.tuners.tuners_utils import BaseTunerLayer

    from polygraft import Trainer, TrainerConfig
    from polygraft.interfaces.datasource import ListSource

    task = make_task()
    generator = torch.Generator().manual_seed(0)
    rows = [{"ids": torch.randint(1, 50, (6,), generator=generator).tolist(), "label": i % 2} for i in range(16)]
    data = ListSource(rows, label_names=["neg", "pos"])
    strategies = build_strategies([{"name": "lora", "r": 2}, "linear-probe", {"name": "ema", "decay": 0.5}],
                                  build_catalog(autoload=False))
    embeddings_before = task.backbone.model.embeddings.word_embeddings.weight.detach().clone()
    trainer = Trainer(TrainerConfig(max_steps=3, batch_size=8, lr=1e-2, progress=False), strategies=strategies)
    result = trainer.fit(task, train_data=data, val_data=data, test_data=data)
    assert "test/accuracy" in result.metrics  # evaluated after finalize (EMA copied, LoRA merged)
    assert not any(isinstance(m, BaseTunerLayer) for m in task.modules())
    assert torch.equal(task.backbone.model.embeddings.word_embeddings.weight, embeddings_before)

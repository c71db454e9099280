"""Strategies per branch of a fusion model (per-branch): probe one branch, LoRA on a text branch, LLRD inside a
branch, a learning-rate multiplier, a branch's own callbacks through the trainer; and the combinations refused."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import polygraft
from polygraft.errors import ConfigError, IncompatibleComponentsError
from polygraft.finetune import build_strategies
from polygraft.interfaces import ListSource

TOYS = {"a": {"backbone": "toy", "backbone_options": {"in_features": 2, "hidden": 8}},
        "b": {"backbone": "toy", "backbone_options": {"in_features": 3, "hidden": 8}}}


def task(branches: dict | None = None):
    return polygraft.create_task("classification", backbone="fusion", label_names=["0", "1"],
                                 backbone_options={"branches": branches or TOYS, "hidden": 8})


def per_branch(**branches):
    return build_strategies([{"name": "per-branch", "branches": branches}])


def trainable(module) -> bool:
    return any(p.requires_grad for p in module.parameters())


def test_probe_one_branch_trains_the_rest() -> None:
    model = task()
    [strategy] = per_branch(a="linear-probe")
    strategy.setup(model)
    assert not trainable(model.backbone.branches["a"])
    assert all(p.requires_grad for p in model.backbone.branches["b"].parameters())
    assert all(p.requires_grad for p in model.backbone.fusion.parameters()) and trainable(model.head)


def test_learning_rate_multiplier_and_llrd_inside_a_branch() -> None:
    model = task()
    [strategy] = per_branch(a={"strategy": {"name": "llrd", "decay": 0.5}, "lr_multiplier": 0.1},
                            b={"lr_multiplier": 2.0})
    strategy.setup(model)
    groups = strategy.param_groups(model, lr=1.0, weight_decay=0.01)
    rates = {group["name"]: group["lr"] for group in groups}
    assert rates["a/layer0/decay"] == pytest.approx(0.1 * 0.5**3) and rates["a/layer2/decay"] == pytest.approx(0.05)
    assert rates["b/decay"] == 2.0 and rates["rest/decay"] == 1.0 and rates["rest/no_decay"] == 1.0
    grouped = [id(p) for group in groups for p in group["params"]]
    assert sorted(grouped) == sorted(id(p) for p in model.parameters())  # every parameter exactly once
    assert per_branch(a="linear-probe")[0].param_groups(model, lr=1.0, weight_decay=0.0) is None


def test_lora_on_a_text_branch(tmp_path: Path) -> None:
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "red", "blue", "square"]))
    text = {"backbone": "bert", "backbone_options": {"tokenizer": str(vocab), "hidden_size": 16, "num_hidden_layers": 1,
                                                     "num_attention_heads": 2, "intermediate_size": 32}}
    model = task({"text": text, "x": TOYS["a"]})
    [strategy] = per_branch(text={"strategy": [{"name": "lora", "r": 2}]})
    strategy.setup(model)
    adapters = [n for n, p in model.backbone.branches["text"].named_parameters() if p.requires_grad]
    assert adapters and all("lora_" in n for n in adapters)
    assert all(p.requires_grad for p in model.backbone.branches["x"].parameters())
    strategy.finalize(model)
    assert not any("lora_" in n for n, _ in model.named_parameters())


def test_a_branchs_callbacks_run_through_the_trainer_with_their_own_keys(tmp_path: Path) -> None:
    data = ListSource([{"a": [float(i % 2), 1.0], "b": [1.0, float(i % 2), 0.0], "label": str(i % 2)}
                       for i in range(32)], label_names=["0", "1"])
    model = task()
    strategies = per_branch(a={"strategy": {"name": "gradual-unfreeze", "every_steps": 2}},
                            b={"strategy": {"name": "ema", "decay": 0.9}, "lr_multiplier": 0.5})
    keys = [callback.checkpoint_key() for callback in strategies[0].callbacks()]
    assert keys == ["a/GradualUnfreezeCallback", "b/EMACallback"]
    config = polygraft.TrainerConfig(max_steps=8, batch_size=8, progress=False)
    result = polygraft.Trainer(config, output_dir=tmp_path, strategies=strategies).fit(model, train_data=data,
                                                                                       val_data=data)
    assert result.stop_reason == "finished"
    assert all(p.requires_grad for p in model.backbone.branches["a"].parameters())  # unfrozen by step 6
    saved = torch.load(tmp_path / "checkpoints" / "last.pt", weights_only=True)
    assert {"a/GradualUnfreezeCallback", "b/EMACallback"} <= set(saved["callbacks"])


@pytest.mark.parametrize(("items", "error", "message"), [
    ([{"name": "per-branch", "branches": {"a": "linear-probe"}}, "llrd"], ConfigError,
     "put layer-wise-lr-decay inside the branch"),
    ([{"name": "per-branch", "branches": {"a": {"strategy": "probe", "lr_multiplyer": 2}}}], ConfigError,
     "did you mean 'lr_multiplier'"),
    ([{"name": "per-branch", "branches": {"a": {"strategy": [{"name": "per-branch", "branches": {"a": "full"}}]}}}],
     ConfigError, "cannot be nested"),
])
def test_refused_combinations(items: list, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        build_strategies(items)


def test_per_branch_needs_a_fusion_backbone_and_known_branches() -> None:
    [strategy] = per_branch(aa="linear-probe")
    with pytest.raises(ConfigError, match="'aa' is not a branch; did you mean 'a'"):
        strategy.setup(task())
    plain = polygraft.create_task("classification", backbone="toy", label_names=["0", "1"])
    with pytest.raises(IncompatibleComponentsError, match="use backbone: fusion"):
        per_branch(a="linear-probe")[0].setup(plain)

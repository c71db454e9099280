"""full / linear-probe / gradual-unfreeze and build_strategies, on the builtin toy backbone."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from torch import nn

import polygraft
from polygraft.errors import ConfigError, UnknownComponentError
from polygraft.finetune import build_strategies
from polygraft.finetune.freezing import GradualUnfreezeStrategy, LinearProbeStrategy
from polygraft.plugins import build_catalog
from polygraft.training.config import TrainerConfig
from polygraft.training.optim import build_optimizer, default_param_groups


@pytest.fixture(scope="module")
def catalog():
    return build_catalog(autoload=False)


def make_task(depth: int = 3, **backbone_options):
    torch.manual_seed(0)
    return polygraft.create_task("classification", backbone="toy", label_names=["a", "b"],
                                 backbone_options={"in_features": 4, "hidden": 8, "depth": depth, **backbone_options})


def batch_for(task, n: int = 8):
    generator = torch.Generator().manual_seed(1)
    examples = [{"x": torch.randn(4, generator=generator).tolist(), "label": i % 2} for i in range(n)]
    return task.collate([task.prepare_example(e) for e in examples])


def fake_trainer(task, *, max_steps: int = 100):
    calls = []
    trainer = SimpleNamespace(module=task, state=SimpleNamespace(global_step=0, epoch=0), max_steps=max_steps,
                              optimizer=None, on_trainable_changed=lambda: calls.append(trainer.state.global_step))
    return trainer, calls


def trainable_groups(task) -> list[bool]:
    return [all(p.requires_grad for p in g.parameters()) for g in task.backbone.layer_groups()]


def one_step(task):
    """One AdamW step with the trainer's own default groups (every parameter, weight decay on)."""
    optimizer = build_optimizer(default_param_groups(task, weight_decay=0.1),
                                TrainerConfig(lr=0.1, weight_decay=0.1), torch.device("cpu"))
    task.train()
    task(batch_for(task)).loss.backward()
    optimizer.step()


def test_full_makes_everything_trainable(catalog):
    task = make_task()
    task.requires_grad_(False)
    (strategy,) = build_strategies(["full"], catalog)
    strategy.setup(task)
    assert all(p.requires_grad for p in task.parameters())


def test_full_trains_only_the_top_layer_groups_it_is_told(catalog):
    task = polygraft.create_task("classification", backbone="toy", label_names=["a", "b"],
                                 backbone_options={"in_features": 4}, catalog=catalog)
    groups = task.backbone.layer_groups()
    (strategy,) = build_strategies([{"name": "full", "trainable_layers": 1}], catalog)
    strategy.setup(task)
    assert not any(p.requires_grad for g in groups[:-1] for p in g.parameters())
    assert all(p.requires_grad for p in groups[-1].parameters())
    assert all(p.requires_grad for p in task.head.parameters())
    with pytest.raises(ConfigError, match="only 3 layer groups"):
        build_strategies([{"name": "full", "trainable_layers": 9}], catalog)[0].setup(task)


def test_linear_probe_freezes_backbone_weights_through_an_optimizer_step(catalog):
    task = make_task()
    (strategy,) = build_strategies(["linear-probe"], catalog)
    strategy.setup(task)
    backbone_before = {n: p.detach().clone() for n, p in task.backbone.named_parameters()}
    head_before = {n: p.detach().clone() for n, p in task.head.named_parameters()}
    one_step(task)
    for name, param in task.backbone.named_parameters():
        assert param.grad is None, name
        assert torch.equal(param, backbone_before[name]), f"{name} changed although frozen"
    assert any(not torch.equal(p, head_before[n]) for n, p in task.head.named_parameters())


def test_linear_probe_keeps_batchnorm_statistics_fixed():
    task = make_task()
    task.backbone.norm = nn.BatchNorm1d(8)  # a backbone with batch-norm statistics
    strategy = LinearProbeStrategy()
    strategy.setup(task)
    (callback,) = strategy.callbacks()
    trainer, _ = fake_trainer(task)
    task.train()
    callback.on_fit_start(trainer)
    task.train()  # the trainer switches back to train mode after validation
    callback.on_train_step_start(trainer, 0)
    assert not task.backbone.norm.training and task.head.training
    task.backbone.norm(torch.randn(4, 8))
    assert torch.equal(task.backbone.norm.running_mean, torch.zeros(8))
    assert LinearProbeStrategy(freeze_batchnorm=False).callbacks() == []


def test_gradual_unfreeze_flips_groups_top_down_at_milestones(catalog):
    task = make_task(depth=3)  # 4 layer groups: stem + 3 blocks
    (strategy,) = build_strategies([{"name": "gradual-unfreeze", "every_steps": 5}], catalog)
    strategy.setup(task)
    assert trainable_groups(task) == [False, False, False, False]
    assert all(p.requires_grad for p in task.head.parameters())
    (callback,) = strategy.callbacks()
    trainer, calls = fake_trainer(task)
    callback.on_fit_start(trainer)
    assert calls == []  # nothing changed since setup: no needless DDP re-wrap
    seen = {}
    for step in range(22):
        trainer.state.global_step = step
        callback.on_train_step_start(trainer, step)
        seen[step] = trainable_groups(task)
    assert seen[4] == [False] * 4
    assert seen[5] == [False, False, False, True]
    assert seen[9] == [False, False, False, True]
    assert seen[10] == [False, False, True, True]
    assert seen[15] == [False, True, True, True]
    assert seen[20] == [True] * 4
    assert calls == [5, 10, 15, 20]
    assert all(p.requires_grad for p in task.backbone.parameters())


def test_gradual_unfreeze_milestones_and_fractions():
    assert GradualUnfreezeStrategy(milestones=[3, 7]).resolve_milestones(4, 100) == [3, 7]
    assert GradualUnfreezeStrategy(milestones=[0.1, 0.5]).resolve_milestones(4, 200) == [20, 100]
    assert GradualUnfreezeStrategy(every_steps=0.1).resolve_milestones(3, 50) == [5, 10, 15]
    assert GradualUnfreezeStrategy().resolve_milestones(4, 80) == [10, 20, 30, 40]  # all trainable at half-way
    with pytest.raises(ConfigError, match="layer groups"):
        GradualUnfreezeStrategy(milestones=[1, 2, 3]).resolve_milestones(2, 100)
    with pytest.raises(ConfigError, match="increase"):
        GradualUnfreezeStrategy(milestones=[5, 3]).resolve_milestones(4, 100)
    with pytest.raises(ConfigError):
        GradualUnfreezeStrategy(every_steps=3, milestones=[1])


def test_gradual_unfreeze_resumes_from_state_and_step():
    task = make_task(depth=3)
    strategy = GradualUnfreezeStrategy(milestones=[2, 4, 6])
    strategy.setup(task)
    (callback,) = strategy.callbacks()
    trainer, _ = fake_trainer(task)
    callback.on_fit_start(trainer)
    for step in range(5):
        trainer.state.global_step = step
        callback.on_train_step_start(trainer, step)
    saved = callback.state_dict()
    assert saved["stage"] == 2

    fresh_task = make_task(depth=3)
    fresh = GradualUnfreezeStrategy(milestones=[2, 4, 6])
    fresh.setup(fresh_task)  # the trainer calls setup, then loads callback state, then on_fit_start
    (resumed,) = fresh.callbacks()
    resumed.load_state_dict(saved)
    trainer2, calls = fake_trainer(fresh_task)
    trainer2.state.global_step = 4
    resumed.on_fit_start(trainer2)
    assert trainable_groups(fresh_task) == [False, False, True, True]
    assert calls == [4]  # flags changed since the DDP wrapper was built: re-wrap once


def test_build_strategies_orders_and_parses_options(catalog):
    strategies = build_strategies(["layer-wise-lr-decay", {"name": "ema", "decay": 0.9}, "lora"], catalog)
    assert [s.name for s in strategies] == ["ema", "lora", "layer-wise-lr-decay"]
    assert strategies[0].callbacks()[0].decay == 0.9
    assert build_strategies([], catalog) == []
    assert [s.name for s in build_strategies("full", catalog)] == ["full"]


@pytest.mark.parametrize("items, match", [
    (["full", "linear-probe"], "cannot be combined"),
    (["linear-probe", "gradual-unfreeze"], "cannot be combined"),
    (["lora", "full"], "cannot be combined"),
    (["layer-wise-lr-decay", "linear-probe"], "cannot be combined"),
    (["ema", {"name": "ema"}], "twice"),
    ([{"decay": 0.9}], "no 'name'"),
    ([{"name": "ema", "dacay": 0.9}], "has no option 'dacay'; did you mean 'decay'"),
    ([{"name": "ema", "decay": "high"}], "option 'decay' must be float"),
    ([{"name": "layer-wise-lr-decay", "decay": 1.5}], "decay"),
    ([3], "each entry is a name or a mapping"),
])
def test_build_strategies_rejects_bad_recipes(catalog, items, match):
    with pytest.raises(ConfigError, match=match):
        build_strategies(items, catalog)


def test_build_strategies_unknown_name_suggests(catalog):
    with pytest.raises(UnknownComponentError, match="Did you mean 'linear-probe'"):
        build_strategies(["linear-prob"], catalog)


def test_every_strategy_is_registered_once(catalog):
    assert set(catalog.registry("strategy").names()) >= {
        "full", "linear-probe", "gradual-unfreeze", "layer-wise-lr-decay", "lora", "ema"}
    assert catalog.get("strategy", "llrd") is catalog.get("strategy", "layer-wise-lr-decay")  # an alias
    assert [s.name for s in build_strategies(["llrd", "ema"], catalog)] == ["ema", "layer-wise-lr-decay"]

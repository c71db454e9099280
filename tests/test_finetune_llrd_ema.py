"""Layer-wise LR decay and EMA on the builtin toy backbone (plus a short run through the real Trainer)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

import polygraft
from polygraft.builtin.synthetic import SyntheticClassification
from polygraft.errors import IncompatibleComponentsError
from polygraft.finetune import build_strategies
from polygraft.finetune.ema import EMAStrategy
from polygraft.finetune.llrd import LayerWiseLRDecayStrategy
from polygraft.plugins import build_catalog


def make_task(depth: int = 2, label_names=("a", "b", "c")):
    torch.manual_seed(0)
    return polygraft.create_task("classification", backbone="toy", label_names=list(label_names),
                                 backbone_options={"in_features": 8, "hidden": 8, "depth": depth})


def trainer_for(task):
    return SimpleNamespace(module=task, state=SimpleNamespace(global_step=0, epoch=0), max_steps=10,
                           on_trainable_changed=lambda: None)


# ---------------------------------------------------------------------------------------------- LLRD
def test_llrd_rates_form_the_expected_geometric_series():
    task = make_task(depth=3)  # layer groups: stem, block0, block1, block2 (L = 4)
    groups = LayerWiseLRDecayStrategy(decay=0.5).param_groups(task, lr=1e-3, weight_decay=0.05)
    by_param = {id(p): g for g in groups for p in g["params"]}
    layer_groups = task.backbone.layer_groups()
    for index, layer in enumerate(layer_groups):
        expected = 1e-3 * 0.5 ** (len(layer_groups) - index)
        for param in layer.parameters():
            assert by_param[id(param)]["lr"] == pytest.approx(expected)
    for param in task.head.parameters():
        assert by_param[id(param)]["lr"] == pytest.approx(1e-3)
    # every parameter exactly once, frozen ones included (gradual-unfreeze relies on it)
    all_ids = [id(p) for g in groups for p in g["params"]]
    assert len(all_ids) == len(set(all_ids)) == len(list(task.parameters()))


def test_llrd_keeps_norms_and_biases_out_of_weight_decay():
    task = make_task()
    groups = LayerWiseLRDecayStrategy(decay=0.8).param_groups(task, lr=1.0, weight_decay=0.05)
    names = {id(p): n for n, p in task.named_parameters()}
    for group in groups:
        for param in group["params"]:
            name = names[id(param)]
            no_decay = param.ndim == 1  # toy: biases and LayerNorm weights are the 1-D tensors
            assert group["weight_decay"] == (0.0 if no_decay else 0.05), name


def test_llrd_lrs_survive_the_trainer_optimizer_and_schedule():
    from polygraft.training.config import TrainerConfig
    from polygraft.training.optim import build_optimizer, build_scheduler

    task = make_task()
    cfg = TrainerConfig(lr=1.0, schedule="constant")
    optimizer = build_optimizer(LayerWiseLRDecayStrategy(decay=0.5).param_groups(task, lr=1.0, weight_decay=0.0),
                                cfg, torch.device("cpu"))
    build_scheduler(optimizer, cfg, 10)
    assert sorted({g["lr"] for g in optimizer.param_groups}) == [0.125, 0.25, 0.5, 1.0]


def test_llrd_needs_layer_groups():
    task = make_task()
    task.backbone.layer_groups = lambda: []
    with pytest.raises(IncompatibleComponentsError, match="layer groups"):
        LayerWiseLRDecayStrategy().param_groups(task, lr=1.0, weight_decay=0.0)


# ----------------------------------------------------------------------------------------------- EMA
def set_weights(task, value: float) -> None:
    with torch.no_grad():
        for param in task.parameters():
            param.fill_(value)


def test_ema_matches_the_hand_computed_average():
    task = make_task()
    strategy = EMAStrategy(decay=0.5, warmup=False)
    (callback,) = strategy.callbacks()
    trainer = trainer_for(task)
    callback.on_fit_start(trainer)
    for step, value in enumerate([1.0, 3.0, 5.0, 9.0], start=1):
        set_weights(task, value)
        trainer.state.global_step = step
        callback.on_train_step_end(trainer, step, torch.tensor(0.0), {}, None)
    # first update copies (like AveragedModel), then ema = 0.5 * ema + 0.5 * live
    expected = 0.5 * (0.5 * (0.5 * 1.0 + 0.5 * 3.0) + 0.5 * 5.0) + 0.5 * 9.0
    assert callback.num_updates == 4
    some_weight = next(iter(callback.averaged))
    assert torch.allclose(callback.averaged[some_weight], torch.full_like(callback.averaged[some_weight], expected))

    # validation sees the EMA weights, training continues from the live ones
    callback.on_validation_start(trainer)
    assert all(torch.allclose(p, torch.full_like(p, expected)) for p in task.parameters())
    callback.on_validation_end(trainer, {})
    assert all(torch.equal(p, torch.full_like(p, 9.0)) for p in task.parameters())

    strategy.finalize(task)  # the saved model holds the EMA weights
    assert all(torch.allclose(p, torch.full_like(p, expected)) for p in task.parameters())


def test_ema_warmup_and_update_every():
    task = make_task()
    (callback,) = EMAStrategy(decay=0.999, update_every=2).callbacks()
    assert [callback.current_decay() for callback.num_updates in (0, 1, 10_000)] == pytest.approx(
        [0.1, 2 / 11, 0.999])
    callback.num_updates = 0
    trainer = trainer_for(task)
    callback.on_fit_start(trainer)
    for step in range(1, 7):
        trainer.state.global_step = step
        callback.on_train_step_end(trainer, step, torch.tensor(0.0), {}, None)
    assert callback.num_updates == 3


def test_ema_state_dict_resumes_exactly():
    task = make_task()
    (callback,) = EMAStrategy(decay=0.9).callbacks()
    trainer = trainer_for(task)
    callback.on_fit_start(trainer)
    for step in range(1, 4):
        set_weights(task, float(step))
        trainer.state.global_step = step
        callback.on_train_step_end(trainer, step, torch.tensor(0.0), {}, None)
    state = callback.state_dict()
    buffer = __import__("io").BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)

    (resumed,) = EMAStrategy(decay=0.9).callbacks()
    resumed.load_state_dict(state)  # the trainer loads callback state before on_fit_start
    trainer.state.global_step = 3
    resumed.on_fit_start(trainer)
    for cb in (callback, resumed):
        set_weights(task, 10.0)
        trainer.state.global_step = 4
        cb.on_train_step_end(trainer, 4, torch.tensor(0.0), {}, None)
    assert resumed.num_updates == callback.num_updates == 4
    for name, tensor in callback.averaged.items():
        assert torch.equal(resumed.averaged[name], tensor), name


def test_llrd_with_ema_through_the_trainer(tmp_path):
    from polygraft import Trainer, TrainerConfig

    data = SyntheticClassification(size=64, num_classes=3, in_features=8, seed=0)
    task = make_task(label_names=data.label_names)
    strategies = build_strategies(["layer-wise-lr-decay", {"name": "ema", "decay": 0.9}],
                                  build_catalog(autoload=False))
    val = SyntheticClassification(size=32, num_classes=3, in_features=8, seed=1)
    trainer = Trainer(TrainerConfig(max_steps=8, batch_size=16, lr=1e-2, progress=False, schedule="constant"),
                      strategies=strategies)
    trainer.fit(task, train_data=data, val_data=val)
    rates = sorted({round(g["lr"], 8) for g in trainer.optimizer.param_groups})
    assert rates == pytest.approx([1e-2 * 0.8**3, 1e-2 * 0.8**2, 1e-2 * 0.8, 1e-2])
    ema = strategies[0].callback
    assert ema.num_updates == 8
    for name, param in task.named_parameters():  # finalize left the EMA weights in the module
        assert torch.equal(param, ema.averaged[name]), name

"""The builtin plugin: registers core's own components exactly the way a third-party plugin would."""

from __future__ import annotations

from polygraft.finetune.specs import STRATEGY_SPECS
from polygraft.hookspecs import Register, hookimpl
from polygraft.specs import BackboneSpec, DatasetSpec
from polygraft.tasks.specs import TASK_SPECS
from polygraft.training.callback_specs import CALLBACK_SPECS


@hookimpl
def polygraft_register_backbones(register: Register) -> None:
    register(BackboneSpec(
        name="toy", factory="polygraft.builtin.toy:create_toy_backbone", modality="any",
        produces=("pooled", "sequence"),
        description="Tiny residual MLP over float vectors or sequences (tests, tutorials).",
    ))


@hookimpl
def polygraft_register_tasks(register: Register) -> None:
    for spec in TASK_SPECS:
        register(spec)


@hookimpl
def polygraft_register_datasets(register: Register) -> None:
    register(DatasetSpec(
        name="synthetic-classification", factory="polygraft.builtin.synthetic:create_synthetic_classification",
        target="class", description="Gaussian clusters made on the fly; learnable in a few steps.",
    ))


@hookimpl
def polygraft_register_strategies(register: Register) -> None:
    for spec in STRATEGY_SPECS:
        register(spec)


@hookimpl
def polygraft_register_callbacks(register: Register) -> None:
    for spec in CALLBACK_SPECS:
        register(spec)

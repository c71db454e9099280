"""The builtin plugin: registers core's own components exactly the way a third-party plugin would."""

from __future__ import annotations

from polygraft.hookspecs import Register, hookimpl
from polygraft.specs import BackboneSpec, DatasetSpec, TaskSpec


@hookimpl
def polygraft_register_backbones(register: Register) -> None:
    register(BackboneSpec(
        name="toy", factory="polygraft.builtin.toy:create_toy_backbone", modality="any",
        produces=("pooled", "sequence"),
        description="Tiny residual MLP over float vectors or sequences (tests, tutorials).",
    ))


@hookimpl
def polygraft_register_tasks(register: Register) -> None:
    register(TaskSpec(
        name="classification", factory="polygraft.tasks.classification:create_classification_task",
        consumes="pooled", target="class",
        description="One label per example from pooled features: accuracy, macro-F1, confusion matrix.",
    ))


@hookimpl
def polygraft_register_datasets(register: Register) -> None:
    register(DatasetSpec(
        name="synthetic-classification", factory="polygraft.builtin.synthetic:create_synthetic_classification",
        target="class", description="Gaussian clusters made on the fly; learnable in a few steps.",
    ))

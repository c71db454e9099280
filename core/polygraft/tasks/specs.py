"""Specs of core's modality-free tasks (import-free; the builtin plugin registers them)."""

from __future__ import annotations

from polygraft.specs import TaskSpec

TASK_SPECS: list[TaskSpec] = [
    TaskSpec(
        name="classification", factory="polygraft.tasks.classification:create_classification_task",
        consumes="pooled", target="class",
        description="One label per example from pooled features: accuracy, macro-F1, confusion matrix.",
    ),
]

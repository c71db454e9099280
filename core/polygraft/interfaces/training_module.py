"""The training-module protocol the Trainer drives: a fine-tuning Task or a PretrainingObjective (and the
StepOutput its forward returns).

Example:
    >>> import polygraft
    >>> task = polygraft.create_task("classification", backbone="toy", label_names=["a", "b"],
    ...                              backbone_options={"in_features": 2})
    >>> batch = task.collate([task.prepare_example({"x": [0.0, 1.0], "label": "b"})])
    >>> float(task(batch).loss) > 0
    True
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from polygraft.features import Batch
from polygraft.interfaces.backbone import Backbone
from polygraft.interfaces.pipeline import DataPipeline

if TYPE_CHECKING:
    from polygraft.interfaces.callback import Callback
    from polygraft.interfaces.datasource import DataSource
    from polygraft.run import RunDirectory


@dataclass
class StepOutput:
    """What ``forward`` returns: the loss to minimise and the raw outputs metrics read."""

    loss: torch.Tensor
    outputs: Any = None


class TrainingModule(nn.Module):
    """Base class of everything the trainer can train. Owns a ``backbone``.

    Life of a batch: ``data_pipeline(training=...).prepare`` (in DataLoader workers, or once for examples the
    trainer keeps) → its ``collate`` → ``forward`` (loss) → ``update_metrics`` → ``compute_metrics`` at the end of
    validation.
    """

    backbone: Backbone
    #: registered name of this task or objective (set when it is built through the catalog)
    spec_name: str = ""
    #: move ``batch["meta"]`` to the device too (most modules read it on the CPU, if at all)
    meta_on_device: bool = False
    #: names of the outputs (classes, tags, characters); empty for objectives
    label_names: list[str] = []  # noqa: RUF012 - never mutated; tasks set their own list

    def data_pipeline(self, *, training: bool) -> DataPipeline:
        """The picklable preprocessing + collation for this module (run in DataLoader workers).

        It must not hold a reference to the module itself, so workers never copy the weights.
        """
        raise NotImplementedError

    def prepare_example(self, example: Mapping[str, Any]) -> dict[str, Any]:
        """Convenience: preprocess one raw example with the evaluation pipeline (built anew each call: hold
        ``data_pipeline(training=False)`` to prepare many)."""
        return self.data_pipeline(training=False).prepare(example)

    def collate(self, items: Sequence[Mapping[str, Any]]) -> Batch:
        """Convenience: collate prepared examples with the evaluation pipeline."""
        return self.data_pipeline(training=False).collate(items)

    def predict(self, batch: Batch) -> list[dict[str, Any]]:
        """Decoded predictions, one JSON-friendly dict per example."""
        raise NotImplementedError

    def predict_examples(self, examples: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Predictions for raw examples, one per example (what ``polygraft predict`` calls with every input). Each
        example is its own batch, so a prediction never depends on what else was asked (padding). A task that
        answers about several inputs together (are two clips the same speaker?) overrides it."""
        from polygraft.features import move_to_device

        pipeline = self.data_pipeline(training=False)
        device = next(self.parameters()).device
        results = []
        for example in examples:
            batch = pipeline.collate([pipeline.prepare(example)])
            results.extend(self.predict(move_to_device(batch, device)))
        return results

    def forward(self, batch: Batch) -> StepOutput:  # pragma: no cover - abstract
        raise NotImplementedError

    def update_metrics(self, batch: Batch, output: StepOutput) -> None:
        """Accumulate metric state for one validation batch (never keep all logits)."""

    def compute_metrics(self) -> dict[str, float]:
        """Metrics over everything since the last reset (reduced across ranks when distributed)."""
        return {}

    def reset_metrics(self) -> None:
        """Clear metric state."""

    def export(self, directory: Path) -> dict[str, Any]:
        """This module's section of ``polygraft.json`` (JSON-serialisable): ``{"kind": "task" | "backbone", ...}``.
        The backbone's section is added by :func:`polygraft.model_io.save_model`."""
        raise NotImplementedError

    def callbacks(self) -> list[Callback]:
        """Trainer callbacks the module needs (an objective's schedule that follows optimizer steps...). The
        default is what the backbone's preprocessor asks for (``Preprocessor.callbacks``: counters of what it
        reports in ``batch["meta"]``); a module that adds its own returns ``[*super().callbacks(), ...]``."""
        return list(self.backbone.preprocessor.callbacks())

    def unknown_labels(self, source: DataSource) -> list[str]:
        """Labels in ``source`` this module cannot score (checked for val/test before training); none by default."""
        return []

    def save_artifacts(self, run: RunDirectory) -> list[Path]:
        """Plots or reports written into the run directory after training (a confusion matrix...); none by default."""
        return []

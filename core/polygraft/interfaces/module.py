"""The training-module protocol the Trainer drives: a fine-tuning Task or a PretrainingObjective.

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
from typing import Any

import torch
from torch import nn

from polygraft.features import Batch
from polygraft.interfaces.backbone import Backbone


class DataPipeline:
    """Picklable: ``prepare`` one raw example (inputs + target), ``collate`` prepared examples into a batch."""

    def prepare(self, example: Mapping[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    def collate(self, items: Sequence[Mapping[str, Any]]) -> Batch:
        raise NotImplementedError

    def lengths(self, examples: Sequence[Mapping[str, Any]]) -> list[int] | None:
        """Per-example compute size (e.g. tokens) for length-grouped batching, or ``None`` if unknown.

        The default asks the pipeline's ``preprocessor`` (see ``Preprocessor.lengths``), if it has one.
        """
        measure = getattr(getattr(self, "preprocessor", None), "lengths", None)
        return measure(examples) if callable(measure) else None


@dataclass
class StepOutput:
    """What ``forward`` returns: the loss to minimise and the raw outputs metrics read."""

    loss: torch.Tensor
    outputs: Any = None


class TrainingModule(nn.Module):
    """Base class of everything the trainer can train. Owns a ``backbone``.

    Life of a batch: ``prepare_example`` (in DataLoader workers) → ``collate`` → ``forward`` (loss) →
    ``update_metrics`` → ``compute_metrics`` at the end of validation.
    """

    backbone: Backbone
    #: registered name of this task or objective, set by the factory
    spec_name: str = ""

    def data_pipeline(self, *, training: bool) -> DataPipeline:
        """The picklable preprocessing + collation for this module (run in DataLoader workers).

        It must not hold a reference to the module itself, so workers never copy the weights.
        """
        raise NotImplementedError

    def prepare_example(self, example: Mapping[str, Any]) -> dict[str, Any]:
        """Convenience: preprocess one raw example with the evaluation pipeline."""
        return self.data_pipeline(training=False).prepare(example)

    def collate(self, items: Sequence[Mapping[str, Any]]) -> Batch:
        """Convenience: collate prepared examples with the evaluation pipeline."""
        return self.data_pipeline(training=False).collate(items)

    def predict(self, batch: Batch) -> list[dict[str, Any]]:
        """Decoded predictions, one JSON-friendly dict per example."""
        raise NotImplementedError

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
        """Write rebuild assets into ``directory``; return the JSON config that :func:`polygraft.load` reads."""
        raise NotImplementedError

"""``polygraft.explain.explain``: one input, one method, one attribution map per explained output.

The input goes through exactly what ``polygraft predict`` does (the preprocessor's ``read_input``, the task's
evaluation pipeline), so bad input gets the same errors. Then the method (``--method``, or the default for the
backbone's input kind: see :data:`polygraft.explain.registry.DEFAULT_ORDER`) attributes each target (see
:mod:`polygraft.explain.tasks`) and the result is an :class:`Explanation` that renders to HTML / PNG / JSON.

Example:
    >>> import polygraft
    >>> from polygraft.explain import explain
    >>> task = polygraft.create_task("classification", backbone="toy", label_names=["a", "b"],
    ...                              backbone_options={"in_features": 3}).eval()
    >>> result = explain(task, {"x": [0.5, -1.0, 2.0]})
    >>> result.method, result.kind, len(result.attributions[0].scores)
    ('occlusion', 'vector', 3)
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from polygraft.explain.registry import Settings, applicable, resolve
from polygraft.explain.subject import Subject
from polygraft.explain.tasks import Target
from polygraft.features import move_to_device
from polygraft.interfaces.task import Task


@dataclass
class Attribution:
    """The map of one explained output.

    Attributes:
        target: what was explained (``positive``, ``Paris → B-LOC``, ``box 0: circle 0.97``, ``3: 'o'``).
        label: its label; ``scores``: per word / feature (1-D), per pixel or time-frequency cell (2-D), per frame.
        units: names of 1-D units (words); completeness: Integrated Gradients' check, else ``None``.
        info: target details (class index, word, frame, box); seconds: time this attribution took.
    """

    target: str
    label: str
    method: str
    scores: np.ndarray
    units: list[str] | None = None
    completeness: dict[str, Any] | None = None
    info: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    #: the explained output's scoring function (checks re-score edited inputs with it)
    source: Target | None = field(default=None, repr=False, compare=False)

    def summary(self, top: int = 5) -> dict[str, Any]:
        """JSON-friendly: every (unit, score) pair for 1-D maps; shape and peak for 2-D ones."""
        row: dict[str, Any] = {"target": self.target, "label": self.label, "method": self.method,
                               "explains": self.source.quantity if self.source else None, **self.info,
                               "completeness": self.completeness, "seconds": round(self.seconds, 4)}
        if self.notes:
            row["notes"] = list(self.notes)
        if self.scores.ndim == 1:
            names = self.units or [f"frame {i}" for i in range(len(self.scores))]
            row["scores"] = [[name, float(value)] for name, value in zip(names, self.scores)]
            order = np.argsort(-self.scores)[:top]
            row["top"] = [names[i] for i in order]
        else:
            peak = np.unravel_index(int(np.argmax(self.scores)), self.scores.shape)
            row["shape"] = list(self.scores.shape)
            row["peak"] = [int(v) for v in peak]
        return row


@dataclass
class Explanation:
    """Everything ``polygraft explain`` reports for one input (``subject`` keeps the tensors for drawing)."""

    input: str
    prediction: dict[str, Any]
    method: str
    kind: str
    methods: list[str]
    attributions: list[Attribution]
    subject: Subject
    files: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        backbone = self.subject.task.backbone
        return {"input": self.input, "prediction": self.prediction, "method": self.method, "kind": self.kind,
                "methods_that_apply": self.methods, "backbone": backbone.spec_name or type(backbone).__name__,
                "declared_hooks": self.subject.declared, "attributed_input": self.subject.hooks.describe(),
                "explanations": [a.summary() for a in self.attributions], "files": self.files}


def prepare(task: Task, value: str | Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(raw example, batch on the model's device, prediction) — the steps and errors of ``polygraft predict``."""
    example = task.backbone.preprocessor.read_input(value) if isinstance(value, str) else dict(value)
    pipeline = task.data_pipeline(training=False)
    batch = pipeline.collate([pipeline.prepare(example)])
    parameter = next(task.parameters(), None)
    if parameter is not None:
        batch = {**move_to_device({k: v for k, v in batch.items() if k != "meta"}, parameter.device),
                 "meta": batch.get("meta", {})}
    prediction = task.predict(batch)[0]
    return example, batch, prediction


def explain(task: Task, value: str | Mapping[str, Any], *, method: str | None = None, target: str | None = None,
            settings: Settings | None = None) -> Explanation:
    """Explain one input (a command-line value or a raw example dict) with one method.

    Args:
        task: a trained task in eval mode (``polygraft.load(run_dir)``).
        value: what ``polygraft predict`` accepts (text, an image or audio path, a JSON vector), or a raw example.
        method: ``integrated-gradients`` (``ig``), ``gradcam``, ``occlusion``, for fusion models
            ``modality-ablation`` and ``modality-shapley``; ``None`` = the default for the input.
        target: the class to explain, or which outputs (tag, character, box label); ``None`` = the prediction.
        settings: steps, tolerance and batch sizes (:class:`~polygraft.explain.registry.Settings`).
    """
    task.eval()
    example, batch, prediction = prepare(task, value)
    subject = Subject(task, batch, example)
    explainer = resolve(method, subject)
    settings = settings or Settings()
    subject.adapter.min_score, subject.adapter.max_boxes = settings.min_box_score, settings.max_boxes
    attributions = []
    for wanted in subject.adapter.targets(prediction, target):
        start = time.perf_counter()
        raw = explainer.attribute(subject, wanted, settings)
        scores = raw.values.float().cpu().numpy() if raw.unit_level else subject.unit_scores(raw.values)
        attributions.append(Attribution(target=wanted.name, label=wanted.label, method=explainer.name,
                                        scores=np.asarray(scores, dtype=np.float32), units=raw.units or
                                        subject.units(), completeness=raw.completeness,
                                        info={**wanted.info, **raw.info},
                                        notes=raw.notes, seconds=time.perf_counter() - start, source=wanted))
    shown = value if isinstance(value, str) else str(example.get("_origin") or "example")
    return Explanation(input=shown, prediction=_plain(prediction), method=explainer.name,
                       kind=explainer.output_kind or subject.hooks.kind,
                       methods=applicable(subject), attributions=attributions, subject=subject)


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, torch.Tensor):
        return value.tolist()
    return value

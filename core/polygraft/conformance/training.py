"""Conformance checks of a task or objective: one training and one evaluation step on CPU, then save → load.

Example:
    >>> import polygraft
    >>> from polygraft.conformance.report import Report
    >>> from polygraft.conformance.training import check_training_module
    >>> task = polygraft.create_task("classification", backbone="toy", label_names=["a", "b"],
    ...                              backbone_options={"in_features": 2})
    >>> report = Report("polygraft")
    >>> examples = [{"x": [0.0, 1.0], "label": "a"}, {"x": [1.0, 0.0], "label": "b"}]
    >>> check_training_module(task, examples, report, "task 'classification'")
    >>> report.passed
    True
"""

from __future__ import annotations

import math
import pickle
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from polygraft.conformance.report import CheckFailed, Report
from polygraft.conformance.steps import Abort, Steps, differences, finite_problems, non_json, require

if TYPE_CHECKING:
    from polygraft.interfaces import TrainingModule
    from polygraft.plugins import Catalog


def make_batch(module: TrainingModule, examples: Sequence[Mapping[str, Any]], *, training: bool) -> Any:
    """What the trainer's DataLoader would give: prepare each example, collate, add ``meta["index"]``."""
    import torch

    pipeline = module.data_pipeline(training=training)
    try:
        pipeline = pickle.loads(pickle.dumps(pipeline))
    except Exception as exc:
        raise CheckFailed(f"data_pipeline(training={training}) must pickle (it runs in DataLoader workers): "
                             f"{type(exc).__name__}: {exc}; it must not hold the module or unpicklable objects") from exc
    batch = pipeline.collate([pipeline.prepare(dict(example)) for example in examples])
    require(isinstance(batch, dict), f"collate must return a dict, got {type(batch).__name__}")
    from polygraft.interfaces import Task

    require(not isinstance(module, Task) or "inputs" in batch,
            "a task's collate must return {'inputs': {...}, <targets>, 'meta': {...}} (DataPipeline.collate_inputs)")
    batch.setdefault("meta", {})["index"] = torch.arange(len(examples))
    return batch


def _training_step(module: TrainingModule, examples: Sequence[Mapping[str, Any]]) -> None:
    import torch

    from polygraft.interfaces.training_module import StepOutput

    batch = make_batch(module, examples, training=True)
    module.train()
    module.zero_grad(set_to_none=True)
    output = module(batch)
    require(isinstance(output, StepOutput), f"forward must return StepOutput(loss, outputs), got {type(output).__name__}")
    loss = output.loss.detach() if isinstance(output.loss, torch.Tensor) else output.loss
    require(isinstance(loss, torch.Tensor) and loss.dim() == 0, "StepOutput.loss must be a scalar tensor")
    require(bool(torch.isfinite(loss)), f"the training loss is {loss.item()}; it must be finite")
    require(output.loss.requires_grad, "the training loss has no gradient: is forward run under torch.no_grad() or detached?")
    output.loss.backward()
    trainable = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
    with_grad = [(n, p) for n, p in trainable if p.grad is not None]
    require(bool(with_grad), "no parameter received a gradient from the loss")
    bad = [n for n, p in with_grad if not bool(torch.isfinite(p.grad).all())]
    require(not bad, f"non-finite gradients in {bad[:5]}")
    require(any(bool(p.grad.abs().sum() > 0) for _, p in with_grad), "every gradient is zero")
    backbone = [n for n, _ in trainable if n.startswith("backbone.")]
    reached = [n for n, _ in with_grad if n.startswith("backbone.")]
    require(not backbone or bool(reached), "the loss sends no gradient into the backbone: does the backbone's forward "
                                     "detach its output or run under torch.no_grad()?")
    module.zero_grad(set_to_none=True)


def _evaluation_step(module: TrainingModule, examples: Sequence[Mapping[str, Any]]) -> Any:
    import torch

    batch = make_batch(module, examples, training=False)
    module.eval()
    with torch.no_grad():
        output = module(batch)
    loss = getattr(output, "loss", None)
    require(loss is None or bool(torch.isfinite(loss)), f"the evaluation loss is {loss}; it must be finite")
    module.reset_metrics()
    module.update_metrics(batch, output)
    metrics = module.compute_metrics()
    require(isinstance(metrics, dict), f"compute_metrics() must return a dict of floats, got {type(metrics).__name__}")
    bad = [k for k, v in metrics.items() if not isinstance(v, int | float) or not math.isfinite(float(v))]
    require(not bad, f"compute_metrics() returned non-finite or non-numeric values for {bad}")
    module.reset_metrics()
    return batch, output


def _predict(module: TrainingModule, batch: Any, size: int) -> list[dict[str, Any]]:
    predictions = module.predict(batch)
    require(isinstance(predictions, list) and len(predictions) == size,
            f"predict(batch) must return one dict per example ({size}), got {type(predictions).__name__}"
            + (f" of {len(predictions)}" if isinstance(predictions, list) else ""))
    bad = non_json(predictions)
    require(not bad, f"predictions must be JSON-friendly (polygraft predict --json prints them): {bad[:5]}")
    return predictions


def _roundtrip(module: TrainingModule, catalog: Catalog, batch: Any, output: Any,
               examples: Sequence[Mapping[str, Any]]) -> None:
    import torch

    import polygraft
    from polygraft.model_io import save_model

    with tempfile.TemporaryDirectory(prefix="polygraft-kit-") as tmp:
        section = module.export(Path(tmp))
        require(isinstance(section, dict) and section.get("kind") in ("task", "backbone"),
                "export() must return {'kind': 'task' | 'backbone', ...} (Task and PretrainingObjective do)")
        bad = non_json(section)
        require(not bad, f"export() must return JSON-serialisable options: {bad[:5]}")
        save_model(module, Path(tmp) / "model")
        loaded = polygraft.load(Path(tmp) / "model", catalog=catalog)
        with torch.no_grad():
            if section["kind"] == "task":
                again = loaded(batch)
                diff = differences(output.outputs, again.outputs)
                require(not diff, f"the model loaded with polygraft.load gives different outputs ({diff[:3]}); the "
                                  "task's export() options must rebuild the same head")
            else:
                pre = module.backbone.preprocessor
                inputs = pre.collate([pre(dict(example)) for example in examples])
                module.backbone.eval()
                reference = module.backbone(inputs).pool()
                again = loaded.preprocessor
                diff = differences(reference, loaded(again.collate([again(dict(e)) for e in examples])).pool())
                require(not diff, f"the pretrained backbone loaded with polygraft.load gives different features "
                                  f"({diff[:3]})")


def check_training_module(module: TrainingModule, examples: Sequence[Mapping[str, Any]], report: Report,
                          component: str, *, catalog: Catalog | None = None, predict: bool = True) -> None:
    """Record a training step, an evaluation step, ``predict`` (tasks) and, with a catalog, save → load."""
    steps = Steps(report, component)
    try:
        steps.run("one training step on CPU: finite loss and gradients", lambda: _training_step(module, examples),
                  required=True)
        result = steps.run("one evaluation step: finite loss and metrics", lambda: _evaluation_step(module, examples),
                           required=True)
        batch, output = result if result is not None else (None, None)
        if predict:
            steps.run("predict", lambda: _predict(module, batch, len(examples)))
            steps.run("predictions are finite", lambda: require(not finite_problems(output.outputs),
                                                                 "the model's outputs hold NaN or infinity"))
        if catalog is not None:
            steps.run("save_model → polygraft.load gives the same outputs",
                      lambda: _roundtrip(module, catalog, batch, output, examples))
    except Abort:
        return


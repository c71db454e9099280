"""Conformance checks of tasks, objectives, weights, strategies and callbacks (backbones and datasets have their
own modules).

Example:
    >>> from polygraft.conformance.components import classification_step
    >>> from polygraft.conformance.report import Report
    >>> from polygraft.plugins import build_catalog
    >>> report = Report("polygraft")
    >>> examples = [{"x": [0.0, 1.0]}, {"x": [1.0, 0.0]}]
    >>> classification_step(build_catalog(autoload=False), "toy", {"in_features": 2}, examples, report)
    >>> report.passed
    True
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from polygraft.conformance.examples import labelled
from polygraft.conformance.report import Report, lookup
from polygraft.conformance.steps import Abort, Steps, explain, require
from polygraft.conformance.training import check_training_module

if TYPE_CHECKING:
    from polygraft.plugins import Catalog

NUM_EXAMPLES = 4


def _fit(module: Any, examples: Sequence[Mapping[str, Any]]) -> None:
    """What the trainer does before training: fit the preprocessing on the training examples."""
    from polygraft.interfaces import ListSource

    module.backbone.preprocessor.fit(ListSource([dict(e) for e in examples], name="conformance"))


def classification_step(catalog: Catalog, backbone: str, options: Mapping[str, Any],
                        examples: Sequence[Mapping[str, Any]], report: Report, *, component: str | None = None,
                        check_export: bool = True, export_queue: list[Any] | None = None) -> None:
    """The backbone inside core's ``classification`` task: train and eval steps, save → load, then (with
    ``check_export``) export to ONNX (:mod:`polygraft.conformance.exporting`), or queue that check on
    ``export_queue`` for :func:`~polygraft.conformance.exporting.run_queued_exports`."""
    import torch

    from polygraft.api import create_task

    label = f"{component or f'backbone {backbone!r}'} in task 'classification'"
    steps = Steps(report, label)
    try:
        torch.manual_seed(0)
        task = steps.run("builds", lambda: create_task("classification", backbone=backbone, catalog=catalog,
                                                       label_names=["a", "b"], backbone_options=dict(options)),
                         required=True)
    except Abort:
        return
    data = labelled([dict(example) for example in examples])
    _fit(task, data)
    check_training_module(task, data, report, label, catalog=catalog)
    if check_export and export_queue is not None:
        export_queue.append((task, data, label))
    elif check_export:
        from polygraft.conformance.exporting import check_exports_to_onnx

        check_exports_to_onnx(task, data, report, label)


def _pick_backbone(catalog: Catalog, spec: Any, pairs: Mapping[str, str] | None,
                   backbones: Mapping[str, Any], consumes: str = "pooled") -> str | None:
    paired = lookup(pairs, spec.kind, spec.name)
    if paired:
        return paired
    for name in backbones:
        backbone_spec = catalog.get("backbone", name)
        if spec.modality in ("any", backbone_spec.modality) and (consumes == "pooled"
                                                                 or consumes in getattr(backbone_spec, "produces", ())):
            return name
    if spec.modality == "any" and consumes in ("pooled", "sequence"):
        return "toy"
    return None


def _backbone_setup(name: str, options: Any, backbones: Mapping[str, Any]) -> tuple[dict[str, Any], Any]:
    """Options and examples for a paired backbone: those it was checked with, else the options table's."""
    if name in backbones:
        _, used, opts = backbones[name]
        return dict(opts), used
    value = lookup(options, "backbone", name, {})
    first = value[0] if isinstance(value, list | tuple) and value else value
    return dict(first or {}), None


def _examples_for(spec: Any, examples: Any, sources: Mapping[str, Any], catalog: Catalog,
                  fallback: Any) -> list[dict[str, Any]] | None:
    if isinstance(examples, Mapping):
        own = lookup(examples, spec.kind, spec.name)
        if own is not None:
            return [dict(e) for e in own]
    for name, source in sources.items():
        data = catalog.get("dataset", name)
        target_ok = spec.kind == "objective" or getattr(data, "target", None) == getattr(spec, "target", None)
        if target_ok and spec.modality in ("any", data.modality) and len(source) >= 2:
            return [dict(source[i]) for i in range(min(NUM_EXAMPLES, len(source)))]
    return [dict(e) for e in fallback] if fallback else None


def check_task(catalog: Catalog, spec: Any, report: Report, *, options: Any, examples: Any, pairs: Any,
               backbones: Mapping[str, Any], sources: Mapping[str, Any]) -> None:
    """A task on a paired backbone: label names from the examples, train/eval steps, predict, save → load."""
    import torch

    from polygraft.api import create_task
    from polygraft.interfaces.task import Task

    steps = Steps(report, f"task {spec.name!r}")
    backbone = _pick_backbone(catalog, spec, pairs, backbones, spec.consumes)
    if backbone is None:
        steps.not_run("training step", f"no backbone to pair it with; pass pairs={{'task:{spec.name}': 'BACKBONE'}}")
        return
    backbone_options, _ = _backbone_setup(backbone, options, backbones)
    data = _examples_for(spec, examples, sources, catalog, None)
    if not data:
        steps.not_run("training step", f"no examples with {spec.target!r} targets; pass "
                                       f"examples={{'task:{spec.name}': [...]}} (raw examples with targets)")
        return
    task_options = dict(lookup(options, "task", spec.name, {}) or {})
    try:
        factory = steps.run("factory imports", spec.load_factory, required=True)
        infer = getattr(factory, "labels_from_data", Task.labels_from_data)
        from polygraft.interfaces import ListSource

        names = steps.run("labels_from_data", lambda: infer(ListSource(data), **task_options), required=True)
        torch.manual_seed(0)
        module = steps.run(f"builds on backbone {backbone!r}", lambda: create_task(
            spec.name, backbone=backbone, label_names=names, backbone_options=backbone_options, catalog=catalog,
            **task_options), required=True)
    except Abort:
        return
    _fit(module, data)
    check_training_module(module, data, report, f"task {spec.name!r} on backbone {backbone!r}", catalog=catalog)


def check_objective(catalog: Catalog, spec: Any, report: Report, *, options: Any, examples: Any, pairs: Any,
                    backbones: Mapping[str, Any], sources: Mapping[str, Any]) -> None:
    """An objective on a paired backbone: train/eval steps, then its backbone checkpoint → polygraft.load."""
    import torch

    from polygraft.api import create_objective

    steps = Steps(report, f"objective {spec.name!r}")
    backbone = _pick_backbone(catalog, spec, pairs, backbones)
    if backbone is None:
        steps.not_run("training step", f"no backbone of modality {spec.modality!r} to pair it with; pass "
                                       f"pairs={{'objective:{spec.name}': 'BACKBONE'}}")
        return
    backbone_options, backbone_examples = _backbone_setup(backbone, options, backbones)
    explicit = lookup(examples, "objective", spec.name) if isinstance(examples, Mapping) else None
    data = [dict(e) for e in explicit] if explicit is not None else backbone_examples
    if not data:
        steps.not_run("training step", f"no examples; pass examples={{'objective:{spec.name}': [...]}}")
        return
    objective_options = dict(lookup(options, "objective", spec.name, {}) or {})
    try:
        torch.manual_seed(0)
        module = steps.run(f"builds on backbone {backbone!r}", lambda: create_objective(
            spec.name, backbone=backbone, backbone_options=backbone_options, catalog=catalog, **objective_options),
            required=True)
    except Abort:
        return
    _fit(module, data)
    check_training_module(module, data, report, f"objective {spec.name!r} on backbone {backbone!r}",
                          catalog=catalog, predict=False)


def check_weights(catalog: Catalog, spec: Any, report: Report) -> None:
    """The alias names a registered backbone whose factory accepts its options, and resolves to a local path."""
    from polygraft.components import checked_options
    from polygraft.errors import AssetError, WeightsError

    steps = Steps(report, f"weights {spec.name!r}")

    def backbone_accepts() -> None:
        require(spec.backbone in catalog.registry("backbone"),
                f"WeightsSpec.backbone names {spec.backbone!r}, which is not registered")
        checked_options(catalog.get("backbone", spec.backbone), dict(spec.backbone_options), supplied=("weights",),
                        where=f"weights {spec.name!r} backbone_options")

    def resolves() -> None:
        factory = spec.load_factory()
        required = [p for p in inspect.signature(factory).parameters.values() if p.default is p.empty
                    and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)]
        require(not required, f"a weights factory takes no arguments; {spec.factory} requires {[p.name for p in required]}")
        path = factory()
        require(isinstance(path, str | Path) and Path(path).exists(),
                f"the factory must return an existing local path, got {path!r}")

    steps.run("names a backbone that accepts its options", backbone_accepts)
    try:
        resolves()
    except (AssetError, WeightsError) as exc:
        steps.not_run("resolves to a local file", f"{exc} (install the asset to check it)")
    except Exception as exc:
        report.fail(steps.component, "resolves to a local file", explain(exc))
    else:
        report.ok(steps.component, "resolves to a local file")


def check_simple(catalog: Catalog, kind: str, name: str, options: Mapping[str, Any], report: Report) -> None:
    """Strategies and callbacks: the factory builds with the given (or default) options."""
    from polygraft.components import build

    Steps(report, f"{kind} {name!r}").run("builds", lambda: build(catalog, kind, name, options),
                                          hint=f"pass its options: options={{'{kind}:{name}': {{...}}}}")


def check_command(spec: Any, report: Report) -> None:
    """A plugin command: its entry point imports, takes ``argv`` and answers ``--help`` with exit code 0."""
    import contextlib
    import io

    def run() -> None:
        main = spec.load_factory()
        require(callable(main), f"the factory of command {spec.name!r} must be a function main(argv) -> int")
        output = io.StringIO()
        try:
            with contextlib.redirect_stdout(output), contextlib.redirect_stderr(output):
                code = main(["--help"])
        except SystemExit as exc:
            code = exc.code
        require(code in (0, None), f"`polygraft {spec.name} --help` ended with exit code {code!r}: main(argv) must "
                                   "parse argv itself (argparse, prog='polygraft NAME') and return an int")

    Steps(report, f"command {spec.name!r}").run("answers --help", run)

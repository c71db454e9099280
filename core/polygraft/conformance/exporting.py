"""The kit's "exports to ONNX" check: a backbone inside core's ``classification`` task is exported with
``polygraft.export`` and run in ONNX Runtime, so every plugin's backbone is checked for export without writing a
test: ``onnx.checker`` passes, ONNX Runtime agrees with PyTorch (max |diff| ≤ 1e-4) on the examples as one batch
and on the first alone (another batch size and length), and predictions decoded from the runtime's outputs equal
``predict``'s. A failure names what to declare (``Backbone.export_input_axes``) or to make traceable.

Without onnx, onnxscript and onnxruntime installed the check is reported as a warning, not run.

Example:
    >>> import polygraft
    >>> from polygraft.conformance.exporting import check_exports_to_onnx
    >>> from polygraft.conformance.report import Report
    >>> task = polygraft.create_task("classification", backbone="toy", label_names=["a", "b"],
    ...                              backbone_options={"in_features": 2})
    >>> report = Report("polygraft")
    >>> check_exports_to_onnx(task, [{"x": [0.0, 1.0]}, {"x": [1.0, 0.5]}], report, "backbone 'toy'")
    >>> report.passed
    True
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from polygraft.conformance.report import Report
from polygraft.conformance.steps import Steps, require

CHECK = "exports to ONNX (onnx.checker, ONNX Runtime = PyTorch at two input shapes, same predictions)"


def _rounded(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 4)
    if isinstance(value, dict):
        return {key: _rounded(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_rounded(item) for item in value]
    return value


def _export_and_compare(task: Any, examples: Sequence[Mapping[str, Any]]) -> None:
    from polygraft.export.onnx_export import export_onnx, run_session, session, signature_from_report
    from polygraft.export.samples import collate

    task.eval()
    with tempfile.TemporaryDirectory(prefix="polygraft-kit-onnx-") as tmp:
        report = export_onnx(task, tmp, examples)
        batch = collate(task, examples)
        outputs = run_session(session(Path(tmp) / "model.onnx"), signature_from_report(report), batch["inputs"])
        expected, got = task.predict(batch), task.predictions_from_outputs(outputs, batch)
    require(_rounded(expected) == _rounded(got),
            "predictions decoded from ONNX Runtime's outputs (Task.predictions_from_outputs) differ from predict(): "
            f"{str(got)[:160]} vs {str(expected)[:160]}")


def run_queued_exports(queue: Sequence[tuple[Any, Sequence[Mapping[str, Any]], str]], report: Report) -> None:
    """The queued export checks, once every other check passed (an export takes seconds, and a plugin with
    failures has those to fix first); otherwise each is reported as a warning saying so."""
    for task, examples, component in queue:
        if report.passed:
            check_exports_to_onnx(task, examples, report, component)
        else:
            report.warn(component, CHECK, "not run: fix the failures above first (the export check runs once "
                                          "every other check passes)")


def check_exports_to_onnx(task: Any, examples: Sequence[Mapping[str, Any]], report: Report, component: str) -> None:
    """Record the export check of ``task`` (built on the backbone being checked) in ``report``."""
    steps = Steps(report, component)
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError as exc:
        steps.warn(CHECK, f"not checked: {exc} (pip install 'polygraft[export]')")
        return
    examples = [{k: v for k, v in dict(e).items() if k != "label"} for e in examples]
    steps.run(CHECK, lambda: _export_and_compare(task, examples))

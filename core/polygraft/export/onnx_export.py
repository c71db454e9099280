"""``--format onnx``: a task as one ONNX graph (torch.onnx's dynamo exporter), checked with ``onnx.checker`` and
against PyTorch in ONNX Runtime at two input shapes, optionally quantised to int8.

The graph reads the tensors the backbone reads (named after the preprocessor's collate keys, nested inputs joined
with dots) with a dynamic batch axis and the axes the backbone declares (``sequence``, ``samples``, ``frames``), and
returns the task's :meth:`~polygraft.interfaces.Task.export_outputs` (``logits``; ``log_probs`` + ``lengths``;
``boxes`` + ``scores``). ``--quantize int8`` adds ``model.int8.onnx``: ONNX Runtime's dynamic quantisation (int8
weights of MatMul/Gemm layers, activations quantised at run time; convolutions stay fp32), whose agreement with the fp32 graph on the sample
inputs is measured and written down, not promised.

Example:
    >>> import tempfile, polygraft
    >>> from polygraft.export.onnx_export import export_onnx
    >>> task = polygraft.create_task("classification", backbone="toy", num_classes=2,
    ...                              backbone_options={"in_features": 3}).eval()
    >>> report = export_onnx(task, tempfile.mkdtemp(), [{"x": [1.0, 2.0, 3.0]}, {"x": [0.0, 1.0, 0.5]}])
    >>> report["outputs"], report["parity"][0]["max_abs_diff"] <= 1e-4
    (['logits'], True)
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from polygraft.errors import ExportError
from polygraft.export.graph import (
    ExportGraph,
    Signature,
    flatten_inputs,
    nest_inputs,
    nested_axes,
    signature_of,
)
from polygraft.export.samples import collate

MODEL_FILE = "model.onnx"
INT8_FILE = "model.int8.onnx"
TOLERANCE = 1e-4
OPSET = 18
INT8_OPS = ("MatMul", "Gemm")
"""What int8 quantises: matrix products. Dynamically quantised convolutions (ConvInteger) are slower than fp32 in
ONNX Runtime on CPU and cost a CNN its accuracy (measured: digits 0.966 → 0.202), so convolutions stay fp32."""
INT8_METHOD = "onnxruntime.quantization.quantize_dynamic, QInt8 weights of MatMul/Gemm, activations at run time"


def _require_onnx() -> None:
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError as exc:
        raise ExportError(f"ONNX export needs onnx, onnxscript and onnxruntime ({exc}): "
                          "pip install 'polygraft[export]'") from None


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """The exporter prints its progress and warns about every annotation it guesses; keep the console readable."""
    loggers = [logging.getLogger(name) for name in ("torch.onnx", "torch.export", "torch._dynamo", "onnxscript")]
    loggers.append(logging.getLogger())  # onnxruntime.quantization warns on the root logger
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def outputs_of(task: Any, inputs: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """``task.export_outputs`` in eval mode without gradients, checked to be named batch-first tensors."""
    with torch.no_grad():
        outputs = task.export_outputs(inputs)
    if not isinstance(outputs, Mapping) or not outputs or \
            not all(isinstance(v, torch.Tensor) for v in outputs.values()):
        raise ExportError(f"{type(task).__name__}.export_outputs must return a non-empty dict of tensors, got "
                          f"{type(outputs).__name__}")
    return dict(outputs)


def _trace(task: Any, signature: Signature, inputs: Mapping[str, Any], file: Path) -> None:
    graph = ExportGraph(task, signature.outputs).eval()
    inputs = nest_inputs(signature.paths, [tensor for _, tensor in flatten_inputs(inputs)])  # tensors only
    try:
        with _quiet(), torch.no_grad():
            torch.onnx.export(graph, (), str(file), kwargs={"inputs": inputs}, dynamo=True, input_names=signature.names,
                              output_names=signature.outputs, dynamic_shapes={"inputs": nested_axes(signature)},
                              opset_version=OPSET, external_data=False, optimize=True)
    except Exception as exc:
        first = _summary(exc)
        raise ExportError(f"torch.onnx.export could not trace {task.spec_name or type(task).__name__!r} on backbone "
                          f"{task.backbone.spec_name!r}: {first[:400]}. The backbone's forward "
                          "(and the task's export_outputs) must be traceable by torch.export: no Python branches on "
                          "tensor values, no .item()/.tolist(); see docs/writing-plugins.md, 'Export'") from exc


def _summary(exc: BaseException) -> str:
    """The line of torch.onnx's long error that says what went wrong (its 'Exception summary')."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    summary = next((line for line in lines if line.startswith("<class")), None)
    return summary or (lines[0] if lines else type(exc).__name__)


def session(file: str | Path, *, threads: int = 1) -> Any:
    """An ONNX Runtime CPU session on ``file`` with ``threads`` intra-op threads."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(str(file), options, providers=["CPUExecutionProvider"])


def run_session(runtime: Any, signature: Signature, inputs: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """The graph's outputs for a batch's nested ``inputs``, as torch tensors by name."""
    values = runtime.run(signature.outputs, signature.feeds(inputs))
    return {name: torch.from_numpy(value) for name, value in zip(signature.outputs, values)}


def compare(reference: Mapping[str, torch.Tensor], got: Mapping[str, torch.Tensor]) -> float:
    """Largest absolute difference over every output (shapes must agree)."""
    worst = 0.0
    for name, expected in reference.items():
        value = got[name]
        if tuple(value.shape) != tuple(expected.shape):
            raise ExportError(f"ONNX output {name!r} has shape {tuple(value.shape)}, PyTorch's {tuple(expected.shape)}: "
                              "an axis the backbone does not declare in export_input_axes() was fixed at export")
        if expected.numel():
            worst = max(worst, float((value.double() - expected.double()).abs().max()))
    return worst


def shape_of(inputs: Mapping[str, Any]) -> dict[str, list[int]]:
    return {name: list(tensor.shape) for name, tensor in flatten_inputs(inputs)}


def check_parity(file: Path, task: Any, signature: Signature, batches: Sequence[Mapping[str, Any]], *,
                 tolerance: float = TOLERANCE) -> list[dict[str, Any]]:
    """ONNX Runtime against PyTorch on each batch; an :class:`ExportError` when a difference exceeds ``tolerance``."""
    runtime = session(file)
    rows = []
    for batch in batches:
        reference = outputs_of(task, batch["inputs"])
        diff = compare(reference, run_session(runtime, signature, batch["inputs"]))
        rows.append({"inputs": shape_of(batch["inputs"]), "max_abs_diff": diff})
        if not diff <= tolerance:
            raise ExportError(f"{file}: ONNX Runtime and PyTorch differ by {diff:.3g} (> {tolerance:g}) on inputs "
                              f"{shape_of(batch['inputs'])}; the graph fixed something that varies (declare the axis "
                              "in export_input_axes()) or an operator exports inexactly")
    return rows


def quantize_int8(file: Path, target: Path, task: Any, signature: Signature,
                  batches: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """ONNX Runtime dynamic int8 quantisation of ``file`` into ``target``; its differences from PyTorch measured."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    model = onnx.load(str(file))
    del model.graph.value_info[:]  # the exporter's shape annotations trip the quantiser's own shape inference
    plain = target.with_name(target.stem + ".plain.onnx")
    onnx.save(model, str(plain))
    try:
        with _quiet():
            quantize_dynamic(str(plain), str(target), weight_type=QuantType.QInt8,
                             op_types_to_quantize=list(INT8_OPS))
    finally:
        plain.unlink(missing_ok=True)
    runtime = session(target)
    rows = []
    for batch in batches:
        reference = outputs_of(task, batch["inputs"])
        got = run_session(runtime, signature, batch["inputs"])
        row: dict[str, Any] = {"inputs": shape_of(batch["inputs"]), "max_abs_diff": compare(reference, got)}
        first = next(iter(reference))
        if reference[first].dim() >= 2 and reference[first].dtype.is_floating_point:
            row[f"{first}_argmax_agreement"] = float((reference[first].argmax(-1) == got[first].argmax(-1))
                                                     .double().mean())
        rows.append(row)
    return {"file": target.name, "method": INT8_METHOD,
            "size_bytes": target.stat().st_size, "against_pytorch": rows}


def export_onnx(task: Any, directory: str | Path, examples: Sequence[Mapping[str, Any]], *,
                quantize: str | None = None) -> dict[str, Any]:
    """Write ``model.onnx`` (and ``model.int8.onnx``) for ``task`` into ``directory``; return the report
    (signature, parity rows, checker result) that goes into ``preprocessing.json``.

    ``examples`` (at least two raw examples, uneven in size) trace the graph and check it: all of them as one
    batch, then the first alone (another batch size and length).
    """
    _require_onnx()
    import onnx

    if quantize not in (None, "int8"):
        raise ExportError(f"--quantize takes int8, got {quantize!r}")
    if len(examples) < 2:
        raise ExportError("export needs at least two sample examples (the batch axis is traced at size 2 or more)")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    task.eval()
    trace_batch = collate(task, examples)
    signature = signature_of(task, trace_batch["inputs"])
    reference = outputs_of(task, trace_batch["inputs"])
    signature.outputs = list(reference)
    file = directory / MODEL_FILE
    _trace(task, signature, trace_batch["inputs"], file)
    try:
        onnx.checker.check_model(str(file), full_check=True)
    except Exception as exc:
        raise ExportError(f"{file}: onnx.checker rejects the exported graph: {exc}") from exc
    batches = [trace_batch, collate(task, examples[:1])]
    report: dict[str, Any] = {
        "file": MODEL_FILE, "opset": OPSET, "exporter": f"torch.onnx.export(dynamo=True), torch {torch.__version__}",
        "inputs": signature.describe(trace_batch["inputs"]),
        "outputs": signature.outputs,
        "output_shapes": {name: list(value.shape[1:]) for name, value in reference.items()},
        "checker": "onnx.checker.check_model(full_check=True) passed",
        "parity": check_parity(file, task, signature, batches),
        "tolerance": TOLERANCE,
    }
    if quantize == "int8":
        report["int8"] = quantize_int8(file, directory / INT8_FILE, task, signature, batches)
    return report


def signature_from_report(report: Mapping[str, Any]) -> Signature:
    """The :class:`Signature` of an exported graph, read back from its ``preprocessing.json`` rows."""
    rows = report["inputs"]
    return Signature([tuple(row["path"]) for row in rows],
                     [{i: v for i, v in enumerate(row["shape"]) if isinstance(v, str)} for row in rows],
                     list(report["outputs"]))

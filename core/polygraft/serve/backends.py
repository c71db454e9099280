"""The models a server answers with: a trained task run by PyTorch or by ONNX Runtime on its exported graph.

Both prepare each raw example with the task's own evaluation pipeline (tokenizer, image transform, resampling: so a
bad input fails alone, before it joins a batch), collate several into one batch, and decode with the task's own
``predict`` / ``predictions_from_outputs``: the two backends answer alike.

Example:
    >>> import polygraft, tempfile
    >>> from polygraft.model_io import save_model
    >>> from polygraft.serve.backends import load_backend
    >>> task = polygraft.create_task("classification", backbone="toy", label_names=["no", "yes"],
    ...                              backbone_options={"in_features": 2})
    >>> backend = load_backend(save_model(task, tempfile.mkdtemp()), name="toy")
    >>> [p["label"] in ("no", "yes") for p in backend.predict([backend.prepare({"x": [0.0, 1.0]})])]
    [True]
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from polygraft.errors import ExportError

BACKENDS = ("pytorch", "onnx")
INPUT_KINDS = {"text": "text", "image": "image", "audio": "audio"}


class ModelBackend:
    """A named task behind ``prepare`` (one raw example → a prepared item) and ``predict`` (items → predictions)."""

    kind = "pytorch"

    def __init__(self, name: str, task: Any, source: Path, *, threads: int = 1) -> None:
        self.name = name
        self.task = task.eval()
        self.source = source
        self.threads = threads
        self.pipeline = task.data_pipeline(training=False)
        self._lock = threading.Lock()

    @property
    def input_key(self) -> str:
        return str(self.task.backbone.preprocessor.input_key)

    @property
    def input_kind(self) -> str:
        """``text`` (JSON text), ``image`` / ``audio`` (an uploaded file), else ``json`` (the raw example as JSON)."""
        return INPUT_KINDS.get(self.input_key, "json")

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "task": self.task.spec_name, "backbone": self.task.backbone.spec_name,
                "modality": self.task.backbone.modality, "input": self.input_kind, "input_key": self.input_key,
                "labels": list(self.task.label_names), "backend": self.kind, "source": str(self.source)}

    def read_file(self, path: str) -> dict[str, Any]:
        """A raw example from an uploaded file (the preprocessor's own reader checks it)."""
        return self.task.backbone.preprocessor.read_input(path)

    def prepare(self, example: Mapping[str, Any]) -> dict[str, Any]:
        return self.pipeline.prepare(dict(example))

    def predict(self, items: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        import torch

        batch = self.pipeline.collate(list(items))
        with self._lock, torch.no_grad():
            torch.set_num_threads(self.threads)
            return self._run(batch)

    def _run(self, batch: dict[str, Any]) -> list[dict[str, Any]]:
        return self.task.predict(batch)


class OnnxBackend(ModelBackend):
    """The task's exported ONNX graph in ONNX Runtime (``model.onnx``, or ``model.int8.onnx`` with ``int8``)."""

    kind = "onnx"

    def __init__(self, name: str, task: Any, source: Path, export_dir: Path, *, threads: int = 1,
                 int8: bool = False) -> None:
        super().__init__(name, task, source, threads=threads)
        from polygraft.export.manifest import REPORT_FILE, read_json
        from polygraft.export.onnx_export import INT8_FILE, MODEL_FILE, session, signature_from_report

        report = read_json(export_dir / REPORT_FILE)
        file = export_dir / (INT8_FILE if int8 else MODEL_FILE)
        if not file.is_file():
            raise ExportError(f"{file} is missing; export with `polygraft export {source} --format onnx"
                              f"{' --quantize int8' if int8 else ''}`")
        self.export_dir = export_dir
        self.file = file
        self.signature = signature_from_report(report)
        self.session = session(file, threads=threads)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "graph": str(self.file)}

    def _run(self, batch: dict[str, Any]) -> list[dict[str, Any]]:
        from polygraft.export.onnx_export import run_session

        return self.task.predictions_from_outputs(run_session(self.session, self.signature, batch["inputs"]), batch)


def onnx_export_for(source: Path, *, int8: bool = False) -> Path:
    """``RUN/exports/onnx[-int8]`` when it was exported from these very weights (an int8 export holds the fp32
    graph too), else a fresh export there."""
    from polygraft.export import default_output, export_model, run_dir_of
    from polygraft.export.manifest import REPORT_FILE, read_json, sha256
    from polygraft.model_io import find_model_dir, weights_file

    run_dir = run_dir_of(source) or source
    model_dir = find_model_dir(source)
    current = sha256(weights_file(model_dir)) if model_dir else None
    quantized = default_output(run_dir, "onnx", "int8")
    from polygraft.export.onnx_export import INT8_METHOD

    for directory in ([quantized] if int8 else [default_output(run_dir, "onnx"), quantized]):
        report = read_json(directory / REPORT_FILE) if (directory / REPORT_FILE).is_file() else {}
        same_int8 = not int8 or report.get("int8", {}).get("method") == INT8_METHOD
        if report.get("source_weights_sha256") == current and same_int8:
            return directory
    target = quantized if int8 else default_output(run_dir, "onnx")
    return export_model(source, "onnx", target, quantize="int8" if int8 else None).directory


def load_backend(source: str | Path, *, name: str | None = None, backend: str = "pytorch", threads: int = 1,
                 int8: bool = False) -> ModelBackend:
    """A served model from a run directory (or model directory)."""
    from polygraft.export import load_task

    if backend not in BACKENDS:
        raise ExportError(f"unknown backend {backend!r}; choose from {', '.join(BACKENDS)}")
    source = Path(source)
    task = load_task(source)
    label = name or (source.name if source.name != "model" else source.parent.name)
    if backend == "onnx":
        return OnnxBackend(label, task, source, onnx_export_for(source, int8=int8), threads=threads, int8=int8)
    if int8:
        raise ExportError("--int8 serves a quantised ONNX graph: add --backend onnx")
    return ModelBackend(label, task, source, threads=threads)

"""``polygraft export``: share what you trained in formats the ecosystem loads with its own loaders.

* ``onnx`` — any task as one ONNX graph with dynamic batch and length axes, checked with ``onnx.checker`` and
  against PyTorch in ONNX Runtime (max |diff| ≤ 1e-4 at two input shapes); ``--quantize int8`` adds a dynamically
  quantised copy. Preprocessing and post-processing are written beside it as data (``preprocessing.json``).
* ``hf`` — a Hugging Face directory for transformers' own classes (AutoModelForSequenceClassification,
  AutoModelForTokenClassification, Wav2Vec2ForSequenceClassification, Wav2Vec2ForCTC + processor,
  WhisperForAudioClassification); logits checked against polygraft's to 1e-5 on export.
* ``timm`` — ``config.json`` + ``model.safetensors`` for ``timm.create_model("local-dir:DIR", pretrained=True)``.

Every export writes a model card (``README.md``) and ``export.json`` (what was checked, with the numbers). Where a
format cannot hold the model, an :class:`~polygraft.errors.ExportError` says which format can.

Example:
    >>> import tempfile, polygraft
    >>> from polygraft.export import export_model
    >>> task = polygraft.create_task("classification", backbone="toy", num_classes=2,
    ...                              backbone_options={"in_features": 3})
    >>> model_dir = polygraft.model_io.save_model(task, tempfile.mkdtemp())
    >>> result = export_model(model_dir, "onnx", tempfile.mkdtemp())
    >>> sorted(p.name for p in result.directory.iterdir())
    ['README.md', 'export.json', 'model.onnx', 'preprocessing.json']
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from polygraft.errors import ExportError

FORMATS = ("onnx", "hf", "timm")


@dataclass
class ExportResult:
    """Where an export went and what was checked (``report`` is ``export.json``)."""

    directory: Path
    format: str
    report: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"directory": str(self.directory), "format": self.format, **self.report}


def default_output(source: str | Path, export_format: str, quantize: str | None = None) -> Path:
    """``RUN/exports/onnx`` (``onnx-int8`` when quantised), ``RUN/exports/hf``, ``RUN/exports/timm``."""
    return Path(source) / "exports" / (export_format + (f"-{quantize}" if quantize else ""))


def run_dir_of(source: str | Path) -> Path | None:
    """The run directory of a run or of its ``model/`` folder (``None`` for a bare model directory)."""
    path = Path(source)
    for candidate in (path, path.parent):
        if (candidate / "config.yaml").is_file() or (candidate / "results.json").is_file():
            return candidate
    return None


def load_task(source: str | Path) -> Any:
    """The trained task of a run; a pretraining run (a bare backbone) cannot be exported as a task."""
    import polygraft
    from polygraft.interfaces import Task

    model = polygraft.load(source)
    if not isinstance(model, Task):
        raise ExportError(f"{source} holds a pretrained backbone, not a fine-tuned task: fine-tune it first "
                          "(`polygraft finetune RECIPE weights=" + str(source) + "`), then export that run")
    return model


def export_model(source: str | Path, export_format: str = "onnx", output: str | Path | None = None, *,
                 quantize: str | None = None, examples: Sequence[Mapping[str, Any]] | None = None) -> ExportResult:
    """Export the task of run (or model directory) ``source`` as ``export_format`` into ``output``.

    ``examples``: raw inputs to trace and check the export with (default: polygraft's uneven samples for text,
    images and audio, else the run's own data).
    """
    from polygraft.export.samples import sample_examples

    if export_format not in FORMATS:
        from polygraft.options import closest

        near = closest(export_format, list(FORMATS))
        raise ExportError(f"unknown export format {export_format!r}"
                          + (f"; did you mean {near[0]!r}?" if near else "") + f" Formats: {', '.join(FORMATS)}")
    if quantize is not None and export_format != "onnx":
        raise ExportError(f"--quantize {quantize} applies to ONNX graphs: use --format onnx --quantize {quantize}")
    task = load_task(source).eval()
    run_dir = run_dir_of(source)
    directory = Path(output) if output is not None else default_output(run_dir or source, export_format, quantize)
    _check_target(directory)
    samples = list(examples) if examples is not None else sample_examples(task, run_dir)
    # written to a staging folder and moved into place once every check passed: a failed export leaves nothing
    staging = directory.parent / f".{directory.name}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        report = _export_to(staging, task, export_format, samples, quantize, source, run_dir)
        shutil.rmtree(directory, ignore_errors=True)
        staging.rename(directory)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return ExportResult(directory, export_format, report)


def _check_target(directory: Path) -> None:
    """An existing output folder is replaced only when it holds an earlier export (never someone's other files)."""
    from polygraft.export.manifest import REPORT_FILE

    if directory.exists() and (not directory.is_dir() or (any(directory.iterdir())
                                                          and not (directory / REPORT_FILE).is_file())):
        raise ExportError(f"{directory} exists and is not an earlier polygraft export (no {REPORT_FILE}); choose an "
                          "empty or new --output folder")


def _export_to(directory: Path, task: Any, export_format: str, samples: Sequence[Mapping[str, Any]],
               quantize: str | None, source: str | Path, run_dir: Path | None) -> dict[str, Any]:
    from polygraft.export.card import write_card
    from polygraft.export.manifest import sha256, write_report
    from polygraft.model_io import find_model_dir, weights_file

    if export_format == "onnx":
        report = _export_onnx(task, directory, samples, quantize)
        auto = ""
    elif export_format == "hf":
        from polygraft.export.hf import export_hf

        report = export_hf(task, directory, samples)
        auto = report["auto_class"]
    else:
        from polygraft.export.timm_dir import export_timm

        report = export_timm(task, directory, samples)
        auto = ""
    model_dir = find_model_dir(source)
    report = {"format": export_format, "source": str(Path(source).resolve()), "task": task.spec_name,
              "backbone": task.backbone.spec_name,
              "source_weights_sha256": sha256(weights_file(model_dir)) if model_dir else None, **report}
    write_report(directory, report)
    write_card(directory, task, run_dir, export_format, report, auto_class=auto)
    return report


def _export_onnx(task: Any, directory: Path, samples: Sequence[Mapping[str, Any]],
                 quantize: str | None) -> dict[str, Any]:
    from polygraft.export.manifest import write_preprocessing
    from polygraft.export.onnx_export import export_onnx
    from polygraft.export.samples import collate

    report = export_onnx(task, directory, samples, quantize=quantize)
    write_preprocessing(directory, task, report, sample=collate(task, samples)["inputs"])
    checks = [report["checker"]] + [
        f"ONNX Runtime vs PyTorch on inputs {row['inputs']}: max |diff| {row['max_abs_diff']:.2e} "
        f"(≤ {report['tolerance']:g})" for row in report["parity"]]
    if "int8" in report:
        checks += [f"int8 ({report['int8']['file']}) vs PyTorch on inputs {row['inputs']}: max |diff| "
                   f"{row['max_abs_diff']:.2e}" + (f", argmax agreement {row['logits_argmax_agreement']:.3f}"
                                                   if "logits_argmax_agreement" in row else "")
                   for row in report["int8"]["against_pytorch"]]
    return {**report, "checks": checks}


__all__ = ["FORMATS", "ExportResult", "default_output", "export_model", "load_task", "run_dir_of"]

"""What is written beside an exported model as data: ``preprocessing.json`` (how to turn a raw input into the
graph's inputs and its outputs into predictions) and ``export.json`` (how the export was checked).

``preprocessing.json`` holds the task and its label names, the raw input key, the backbone's preprocessing settings
(``Preprocessor.describe()``: image size, mean/std, crop; sample rate and mel settings; tokenizer settings), the
files the preprocessor writes (a tokenizer under ``preprocessing/``), the graph's inputs and outputs with their
dynamic axes, and the post-processing in words and numbers (softmax over labels, CTC's vocabulary, detection's
thresholds and pyramid sizes).

Example:
    >>> import json, tempfile, polygraft
    >>> from pathlib import Path
    >>> from polygraft.export.manifest import write_preprocessing
    >>> task = polygraft.create_task("classification", backbone="toy", label_names=["no", "yes"],
    ...                              backbone_options={"in_features": 2})
    >>> file = write_preprocessing(Path(tempfile.mkdtemp()), task, {"inputs": [], "outputs": ["logits"]})
    >>> json.loads(file.read_text())["labels"]
    ['no', 'yes']
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

PREPROCESSING_FILE = "preprocessing.json"
REPORT_FILE = "export.json"
ASSETS_DIR = "preprocessing"

POSTPROCESSING = {
    "classification": "softmax over `logits` (batch, labels); the best label is its argmax",
    "token-classification": "argmax over `logits` (batch, tokens, tags) read at each word's first sub-token (the "
                            "tokenizer's word_ids); entities are the IOB2 spans of the word tags",
    "ctc": "greedy CTC: per example the argmax of `log_probs` (batch, frames, vocabulary) over its first `lengths` "
           "frames, repeats merged, index 0 (<blank>) and <unk> dropped, ids mapped through `labels` (the "
           "vocabulary)",
    "detection": "per level (`decoding.level_sizes` anchors each): scores above score_thresh, the topk_candidates "
                 "best, boxes clipped to the input, NMS per class at nms_thresh, the detections_per_image best "
                 "(polygraft.tasks.detection_decode.decode_detections, NumPy); boxes are in network-input pixels: "
                 "divide by the resize scale for the original image's",
}


def sha256(file: Path) -> str:
    digest = hashlib.sha256()
    with open(file, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_preprocessing(directory: Path, task: Any, report: Mapping[str, Any], *,
                        sample: Mapping[str, Any] | None = None) -> Path:
    """``preprocessing.json`` (+ the preprocessor's files under ``preprocessing/``) for ``task``'s export."""
    preprocessor = task.backbone.preprocessor
    assets = preprocessor.export_assets(directory / ASSETS_DIR)
    if (directory / ASSETS_DIR).is_dir() and not any((directory / ASSETS_DIR).iterdir()):
        (directory / ASSETS_DIR).rmdir()
    data: dict[str, Any] = {
        "task": task.spec_name, "labels": list(task.label_names),
        "backbone": task.backbone.spec_name, "modality": task.backbone.modality,
        "input_key": preprocessor.input_key,
        "preprocessor": json.loads(json.dumps(preprocessor.describe(), default=str)),
        "assets": {"directory": ASSETS_DIR, "files": assets} if assets else None,
        "inputs": report.get("inputs", []), "outputs": report.get("outputs", []),
        "postprocessing": POSTPROCESSING.get(task.spec_name, f"see {type(task).__name__}.predictions_from_outputs"),
    }
    if sample is not None and hasattr(task, "decoding"):
        data["decoding"] = task.decoding(sample)
    file = directory / PREPROCESSING_FILE
    file.write_text(json.dumps(data, indent=2) + "\n")
    return file


def write_report(directory: Path, report: Mapping[str, Any]) -> Path:
    file = directory / REPORT_FILE
    file.write_text(json.dumps(report, indent=2, default=str) + "\n")
    return file


def read_json(file: Path) -> dict[str, Any]:
    from polygraft.errors import ExportError

    try:
        return json.loads(file.read_text())
    except (OSError, ValueError) as exc:
        raise ExportError(f"{file}: cannot read the export description ({exc}); export again with "
                          "`polygraft export RUN --format onnx`") from None

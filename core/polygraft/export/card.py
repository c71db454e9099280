"""The model card (``README.md``) every export writes: what the model does, its labels, the data it was trained
and measured on, the run's measured metrics (``results.json``), how it was exported and checked, and the licence
and source of the pretrained weights it started from.

Example:
    >>> import tempfile, polygraft
    >>> from pathlib import Path
    >>> from polygraft.export.card import write_card
    >>> task = polygraft.create_task("classification", backbone="toy", label_names=["no", "yes"],
    ...                              backbone_options={"in_features": 2})
    >>> text = write_card(Path(tempfile.mkdtemp()), task, None, "onnx", {}).read_text()
    >>> "| no | yes |" in text or "`no`" in text
    True
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

CARD_FILE = "README.md"
USAGE = {
    "onnx": "```python\nimport onnxruntime, json\nsession = onnxruntime.InferenceSession(\"model.onnx\")\n"
            "spec = json.load(open(\"preprocessing.json\"))   # inputs, labels, preprocessing, post-processing\n```\n"
            "Or serve it: `polygraft serve RUN --backend onnx`.",
    "hf": "```python\nfrom transformers import {auto}\nmodel = {auto}.from_pretrained(\"DIR\")\n```",
    "timm": "```python\nimport timm\nmodel = timm.create_model(\"local-dir:DIR\", pretrained=True)\n```",
}


def _run_files(run_dir: Path | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """(results.json, config.yaml) of the run, empty when absent."""
    results: dict[str, Any] = {}
    config: dict[str, Any] = {}
    if run_dir is None:
        return results, config
    if (run_dir / "results.json").is_file():
        results = json.loads((run_dir / "results.json").read_text())
    if (run_dir / "config.yaml").is_file():
        import yaml

        config = yaml.safe_load((run_dir / "config.yaml").read_text()) or {}
    return results, config


def weights_origin(config: Mapping[str, Any]) -> tuple[str, str, str]:
    """(weights name, licence, source) of the run's starting weights, from the registered alias when there is one."""
    weights = config.get("weights")
    if not weights:
        return "none (random initialisation)", "not applicable: trained from scratch by this run", "this run"
    try:
        import polygraft

        spec: Any = polygraft.build_catalog().get("weights", str(weights))
        return str(weights), str(spec.license), str(spec.source or spec.description)
    except Exception:  # a local path or a hub id: nothing registered says more
        return str(weights), "unknown (check the licence of the weights you started from)", str(weights)


def _metrics_table(results: Mapping[str, Any]) -> str:
    rows = [(k, v) for k, v in sorted(results.items()) if isinstance(v, int | float) and not isinstance(v, bool)
            and k.split("/")[0] in ("val", "test") and not k.endswith("truncated_examples")]
    if not rows:
        return "No measured metrics: the run has no results.json.\n"
    lines = ["| metric | value |", "|---|---|"]
    lines += [f"| {key} | {value:.4f} |" if isinstance(value, float) else f"| {key} | {value} |"
              for key, value in rows]
    training = {k.split("/")[1]: v for k, v in results.items() if k.startswith("train/") and k.split("/")[1] in
                ("steps", "wall_time_s", "samples_per_s")}
    if training:
        lines.append("\nTraining: " + ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                                               for k, v in sorted(training.items())) + ".")
    return "\n".join(lines) + "\n"


def _data_lines(config: Mapping[str, Any]) -> str:
    data = config.get("data") or {}
    if not data:
        return "Not recorded (the model was not trained from a recipe).\n"
    lines = []
    for split, spec in data.items():
        if isinstance(spec, Mapping):
            options = ", ".join(f"{k}={v}" for k, v in spec.items() if k != "dataset")
            lines.append(f"- **{split}**: `{spec.get('dataset')}`" + (f" ({options})" if options else ""))
    return "\n".join(lines) + "\n"


def write_card(directory: Path, task: Any, run_dir: Path | None, export_format: str, report: Mapping[str, Any], *,
               auto_class: str = "") -> Path:
    """Write ``README.md`` into ``directory`` and return it."""
    results, config = _run_files(run_dir)
    weights, licence, source = weights_origin(config)
    labels = ", ".join(f"`{name}`" for name in task.label_names)
    checks = report.get("checks") or []
    usage = USAGE[export_format].replace("{auto}", auto_class or "AutoModel")
    lines = [
        "---",
        f"library_name: {'onnx' if export_format == 'onnx' else 'transformers' if export_format == 'hf' else 'timm'}",
        f"tags: [polygraft, {task.spec_name}, {task.backbone.modality}]",
        "---",
        f"# {task.spec_name} on {task.backbone.spec_name} ({task.backbone.modality})",
        "",
        f"Exported by `polygraft export --format {export_format}` from "
        f"{'run `' + str(run_dir) + '`' if run_dir else 'a polygraft model'}.",
        "",
        "## Task and labels",
        f"Task `{task.spec_name}` with {len(task.label_names)} labels: {labels}.",
        "",
        "## Data",
        _data_lines(config),
        "## Measured metrics (the run's results.json)",
        _metrics_table(results),
        "## Weights",
        f"- started from: {weights}",
        f"- licence of those weights: {licence}",
        f"- source: {source}",
        "- fine-tuned by polygraft; the fine-tuned weights inherit the licence of the weights they started from.",
        "",
        "## Export checks",
        *(f"- {check}" for check in checks),
        "",
        "## Use",
        usage,
        "",
    ]
    file = directory / CARD_FILE
    file.write_text("\n".join(lines))
    return file

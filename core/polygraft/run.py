"""The run directory a person (and a script) can read.

```
runs/NAME/
  config.yaml       the resolved recipe (every default filled in)
  metrics.jsonl     one JSON object per log/validation step
  results.json      flat map of final metric name -> number ("val/accuracy": 0.81)
  data.json         dataset sizes and skipped-example counts
  checkpoints/      last.pt (resume) and best.pt
  model/            model.safetensors + polygraft.json (+ backbone assets): polygraft.load(run_dir)
  curves.png        learning curves; confusion.png for classification
```

Example:
    >>> import tempfile
    >>> from polygraft.run import RunDirectory
    >>> run = RunDirectory(tempfile.mkdtemp())
    >>> run.log({"step": 1, "train/loss": 0.5})
    >>> run.read_metrics()[0]["train/loss"]
    0.5
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any


class RunDirectory:
    """Paths and writers of one run (only the main rank writes)."""

    def __init__(self, path: str | Path, *, enabled: bool = True) -> None:
        self.path = Path(path)
        self.enabled = enabled
        if enabled:
            self.path.mkdir(parents=True, exist_ok=True)

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def model_dir(self) -> Path:
        return self.path / "model"

    @property
    def metrics_file(self) -> Path:
        return self.path / "metrics.jsonl"

    def log(self, row: Mapping[str, Any]) -> None:
        if not self.enabled:
            return
        with open(self.metrics_file, "a") as handle:
            handle.write(json.dumps(_finite(row)) + "\n")

    def read_metrics(self) -> list[dict[str, Any]]:
        if not self.metrics_file.exists():
            return []
        return [json.loads(line) for line in self.metrics_file.read_text().splitlines() if line.strip()]

    def truncate_metrics(self, after_step: int) -> None:
        """Drop rows logged after ``after_step`` (a resumed run rewrites them)."""
        if not self.enabled or not self.metrics_file.exists():
            return
        kept = [row for row in self.read_metrics() if row.get("step", 0) <= after_step]
        self.metrics_file.write_text("".join(json.dumps(row) + "\n" for row in kept))

    def write_json(self, name: str, data: Any) -> Path:
        path = self.path / name
        if self.enabled:
            path.write_text(json.dumps(_finite(data), indent=2, sort_keys=True) + "\n")
        return path

    def read_json(self, name: str) -> Any:
        return json.loads((self.path / name).read_text())

    def write_config(self, config: Mapping[str, Any]) -> None:
        if not self.enabled:
            return
        import yaml

        (self.path / "config.yaml").write_text(yaml.safe_dump(dict(config), sort_keys=False))


def _finite(value: Any) -> Any:
    """JSON has no NaN/inf: write them as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {key: _finite(v) for key, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value

"""The run directory a person (and a script) can read. This class names every file in it.

```
runs/NAME/
  config.yaml       the resolved recipe (every default filled in)
  metrics.jsonl     one JSON object per log/validation step
  results.json      final metric name -> number ("val/accuracy": 0.81), plus "skipped": per-split skip reports
  data.json         every split's size, labels and skipped/changed examples
  checkpoints/      last.pt (resume) and best.pt (the best-checkpoint callback)
  model/            model.safetensors + polygraft.json (+ backbone assets): polygraft.load(run_dir)
  curves.png        learning curves; other plots a task draws (confusion.png for classification)
  train.log         what the run printed, when another process ran it (polygraft compare)
```

Example:
    >>> import tempfile
    >>> from polygraft.run import RunDirectory
    >>> run = RunDirectory(tempfile.mkdtemp())
    >>> run.log({"step": 1, "train/loss": 0.5})
    >>> run.read_metrics()[0]["train/loss"], run.last_checkpoint.name
    (0.5, 'last.pt')
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from polygraft.errors import ConfigError


class RunDirectory:
    """Paths and writers of one run (only the main rank writes: ``enabled=False`` elsewhere)."""

    def __init__(self, path: str | Path, *, enabled: bool = True) -> None:
        self.path = Path(path)
        self.enabled = enabled
        if enabled:
            self.path.mkdir(parents=True, exist_ok=True)

    # ------------------------------------------------------------------ the files
    @property
    def config_file(self) -> Path:
        return self.path / "config.yaml"

    @property
    def metrics_file(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def results_file(self) -> Path:
        return self.path / "results.json"

    @property
    def data_file(self) -> Path:
        return self.path / "data.json"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def last_checkpoint(self) -> Path:
        return self.checkpoints / "last.pt"

    @property
    def best_checkpoint(self) -> Path:
        return self.checkpoints / "best.pt"

    @property
    def model_dir(self) -> Path:
        return self.path / "model"

    @property
    def log_file(self) -> Path:
        return self.path / "train.log"

    def plot(self, name: str) -> Path:
        """``curves`` → ``curves.png`` (learning curves); tasks add their own (``confusion``)."""
        return self.path / f"{name}.png"

    # ------------------------------------------------------------------ reading and writing
    def log(self, row: Mapping[str, Any]) -> None:
        if not self.enabled:
            return
        with open(self.metrics_file, "a") as handle:
            handle.write(json.dumps(_finite(row)) + "\n")

    def read_metrics(self) -> list[dict[str, Any]]:
        if not self.metrics_file.exists():
            return []
        return [json.loads(line) for line in self.metrics_file.read_text().splitlines() if line.strip()]

    def clear_metrics(self) -> None:
        """Start a fresh ``metrics.jsonl`` (a new run in an old directory)."""
        if self.enabled and self.metrics_file.exists():
            self.metrics_file.unlink()

    def truncate_metrics(self, after_step: int) -> None:
        """Drop rows logged after ``after_step`` (a resumed run rewrites them)."""
        if not self.enabled or not self.metrics_file.exists():
            return
        kept = [row for row in self.read_metrics() if row.get("step", 0) <= after_step]
        self.metrics_file.write_text("".join(json.dumps(row) + "\n" for row in kept))

    def write_results(self, results: Mapping[str, Any]) -> Path:
        return self._write_json(self.results_file, results)

    def read_results(self) -> dict[str, Any]:
        """``results.json`` (a ConfigError naming the file when it is missing or damaged)."""
        try:
            results = json.loads(self.results_file.read_text())
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{self.results_file}: cannot read the run's results ({exc})") from None
        if not isinstance(results, dict):
            raise ConfigError(f"{self.results_file}: expected a JSON object of results")
        return results

    def write_data_report(self, report: Mapping[str, Any]) -> Path:
        return self._write_json(self.data_file, report)

    def write_config(self, config: Mapping[str, Any]) -> None:
        if not self.enabled:
            return
        import yaml

        self.config_file.write_text(yaml.safe_dump(dict(config), sort_keys=False))

    def read_config(self) -> dict[str, Any]:
        """The resolved recipe saved by the run (``config.yaml``)."""
        import yaml

        try:
            config = yaml.safe_load(self.config_file.read_text())
        except OSError as exc:
            raise ConfigError(f"{self.path} is not a polygraft run directory (no readable {self.config_file.name}: "
                              f"{exc})") from exc
        except yaml.YAMLError as exc:
            raise ConfigError(f"{self.config_file}: not valid YAML ({exc})") from exc
        if not isinstance(config, dict):
            raise ConfigError(f"{self.config_file}: expected a recipe mapping")
        return config

    def _write_json(self, path: Path, data: Any) -> Path:
        if self.enabled:
            path.write_text(json.dumps(_finite(data), indent=2, sort_keys=True) + "\n")
        return path


def _finite(value: Any) -> Any:
    """JSON has no NaN/inf: write them as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {key: _finite(v) for key, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value

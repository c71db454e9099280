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
  .lock             held (flock) by the process that trains into the folder, with its pid and command
  .incomplete       present from the start of a run until its model is saved: model/ is not this run's yet
```

A run directory holds one run. A new run into a folder that already holds one (results, a model, a checkpoint)
is refused unless the recipe says ``overwrite: true`` (the old run's files are then removed first) or it resumes
(``resume=last``); two processes never train into one folder at once (the lock), and ``evaluate``, ``predict`` and
``polygraft.load`` refuse a folder whose run stopped before its model was saved (``.incomplete``), so a failed run
can never pass for an older one.

Example:
    >>> import tempfile
    >>> from polygraft.run import RunDirectory
    >>> run = RunDirectory(tempfile.mkdtemp())
    >>> run.log({"step": 1, "train/loss": 0.5})
    >>> run.read_metrics()[0]["train/loss"], run.last_checkpoint.name
    (0.5, 'last.pt')
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from polygraft.errors import ConfigError, TrainingError
from polygraft.paths import exists, process_alive

RUN_FILES = ("config.yaml", "metrics.jsonl", "results.json", "data.json", ".incomplete")  # train.log: the writer's
RUN_FOLDERS = ("checkpoints", "model", "tensorboard", "mlruns")


class RunDirectory:
    """Paths and writers of one run (only the main rank writes: ``enabled=False`` elsewhere)."""

    def __init__(self, path: str | Path, *, enabled: bool = True) -> None:
        self.path = Path(path)
        self.enabled = enabled
        if enabled:
            try:
                self.path.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                shown = str(self.path) if len(str(self.path)) < 200 else f"{str(self.path)[:80]}..."
                raise ConfigError(f"cannot make the run directory {shown}: {exc.strerror or exc}; give output_dir a "
                                  "folder you can write") from None

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

    @property
    def lock_file(self) -> Path:
        return self.path / ".lock"

    @property
    def incomplete_marker(self) -> Path:
        return self.path / ".incomplete"

    def plot(self, name: str) -> Path:
        """``curves`` → ``curves.png`` (learning curves); tasks add their own (``confusion``)."""
        return self.path / f"{name}.png"

    # ------------------------------------------------------------------ one run at a time
    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the folder's lock for the block: a second process gets a TrainingError naming the holder. The
        lock is an ``flock`` on ``.lock``, so the system releases it when the holder dies, however it dies."""
        if not self.enabled:
            yield
            return
        import fcntl

        handle = open(self.lock_file, "a+")  # noqa: SIM115 - held for the block
        try:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise TrainingError(f"{self.path} is in use by another polygraft run ({_holder(self.lock_file)}); "
                                    "wait for it, or give this run another output_dir") from None
            handle.seek(0)
            handle.truncate()
            handle.write(json.dumps({"pid": os.getpid(), "started": time.time(), "command": _command()}))
            handle.flush()
            yield
        finally:
            handle.close()  # closing the descriptor releases the lock

    def holds_a_run(self) -> list[str]:
        """The files of an earlier run in this folder (results, model, checkpoint, metrics), if any."""
        found = [self.results_file, self.model_dir / "polygraft.json", self.last_checkpoint, self.metrics_file]
        return [str(path.relative_to(self.path)) for path in found if exists(path)]

    def begin(self, *, resume: bool, overwrite: bool) -> None:
        """Start a run here (holding the lock): refuse to mix it with an earlier run, or clear that run when told
        to; then mark the folder incomplete until :meth:`finish`."""
        if not self.enabled:
            return
        earlier = self.holds_a_run()
        if not resume and earlier and not overwrite:
            raise TrainingError(f"{self.path} already holds a run ({', '.join(earlier)}); give this run a new "
                                "output_dir, resume that one with resume=last, or replace it with overwrite=true")
        if not resume and overwrite:
            self.clear()
        self.remove_stale_temporaries()
        self.incomplete_marker.write_text(json.dumps({"pid": os.getpid(), "started": time.time(),
                                                     "command": _command()}) + "\n")

    def finish(self) -> None:
        """The run's model is saved: the folder's model is this run's (results may still follow)."""
        if self.enabled:
            self.incomplete_marker.unlink(missing_ok=True)

    def clear(self) -> None:
        """Remove an earlier run's files (only the names this class gives them, and its plots)."""
        for name in RUN_FILES:
            (self.path / name).unlink(missing_ok=True)
        for name in RUN_FOLDERS:
            shutil.rmtree(self.path / name, ignore_errors=True)
        for plot in self.path.glob("*.png"):
            plot.unlink(missing_ok=True)

    def remove_stale_temporaries(self) -> None:
        """Temporary files a killed process left behind (``.last.pt.tmp-PID``, ``model.tmp-PID``)."""
        for pattern in ("checkpoints/.*.tmp-*", ".model.tmp-*"):
            for path in self.path.glob(pattern):
                pid = path.name.rsplit("-", 1)[-1].split(".")[0]
                if not pid.isdigit() or not process_alive(int(pid)):
                    shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)

    def check_finished(self) -> None:
        """Refuse a folder whose run did not finish (TrainingError saying how to finish or replace it)."""
        if exists(self.incomplete_marker):
            raise TrainingError(f"{self.path}: this run did not finish ({_holder(self.incomplete_marker)}); its "
                                "files may be half written or from an earlier run. Finish it with resume=last (the "
                                "same recipe), or train again with overwrite=true")

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
        from polygraft.safe_yaml import load_file

        if not self.config_file.is_file():
            raise ConfigError(f"{self.path} is not a polygraft run directory (no {self.config_file.name})")
        config = load_file(self.config_file)
        if not isinstance(config, dict):
            raise ConfigError(f"{self.config_file}: expected a recipe mapping")
        return config

    def _write_json(self, path: Path, data: Any) -> Path:
        if self.enabled:
            path.write_text(json.dumps(_finite(data), indent=2, sort_keys=True) + "\n")
        return path


def _command() -> str:
    return " ".join(sys.argv)[:500] or "python"


def _holder(file: Path) -> str:
    """``pid 123 (running), started 4 s ago: polygraft finetune ...`` from a lock or marker file."""
    try:
        info = json.loads(file.read_text() or "{}")
    except (OSError, ValueError):
        info = {}
    pid = info.get("pid")
    if not isinstance(pid, int):
        return "holder unknown"
    state = "running" if process_alive(pid) else "no longer running"
    ago = time.time() - float(info.get("started", time.time()))
    return f"pid {pid}, {state}, started {_duration(ago)} ago: {info.get('command', '?')}"


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _finite(value: Any) -> Any:
    """JSON has no NaN/inf: write them as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {key: _finite(v) for key, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value

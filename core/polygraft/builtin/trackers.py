"""Experiment trackers as callbacks, one door for all: ``callbacks: [tensorboard]`` or ``callbacks: [mlflow]``.

A tracker writes what the run directory holds, and nothing the run directory does not: every row of
``metrics.jsonl`` (training loss, learning rate, throughput, each validation's metrics) at its step, the resolved
recipe (``config.yaml``) as hyper-parameters, and at the end the final results (``results.json``) and the plots
(``curves.png``, ``confusion.png``...). Rows are read from ``metrics.jsonl`` as it grows, so a tracker never
disagrees with it. Offline by default, on the main process only:

* ``tensorboard``: event files in ``RUN/tensorboard`` (``tensorboard --logdir RUN/tensorboard``); the recipe and
  the final results in the HParams tab, the plots as images. A resumed run purges the events after its checkpoint.
* ``mlflow``: MLflow's file store in ``RUN/mlruns`` (``mlflow ui --backend-store-uri RUN/mlruns``), one MLflow run
  per polygraft run (a resume goes on in the same MLflow run); ``tracking_uri`` points elsewhere (a server, a
  database), ``experiment`` names the experiment. MLflow keeps its file store only for those who ask for it,
  which this callback does for ``file:`` URIs (``MLFLOW_ALLOW_FILE_STORE``).

Example:
    >>> from polygraft.builtin.trackers import flat_params
    >>> flat_params({"trainer": {"lr": 0.001, "batch_size": 8}, "task": "classification"})
    {'trainer.lr': '0.001', 'trainer.batch_size': '8', 'task': 'classification'}
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from polygraft.errors import ConfigError
from polygraft.interfaces import Callback, TrainerView

STEP = "step"


def flat_params(config: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """A nested recipe as ``{"trainer.lr": "0.001", ...}`` (what trackers take as hyper-parameters)."""
    flat: dict[str, str] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flat_params(value, f"{name}."))
        else:
            flat[name] = json.dumps(value) if isinstance(value, list | dict) else str(value)
    return flat


def numbers(row: Mapping[str, Any]) -> dict[str, float]:
    """The finite numbers of a row (no step, no nested reports)."""
    return {key: float(value) for key, value in row.items() if key != STEP and isinstance(value, int | float)
            and not isinstance(value, bool) and math.isfinite(value)}


class MetricsTail:
    """The rows appended to a ``metrics.jsonl`` since the last read."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = path.stat().st_size if path.exists() else 0  # earlier rows belong to an earlier fit

    def rows(self) -> list[dict[str, Any]]:
        if not self.path.exists() or self.path.stat().st_size <= self.offset:
            return []
        with open(self.path) as handle:
            handle.seek(self.offset)
            text = handle.read()
        complete = text[: text.rfind("\n") + 1]  # a row being written is read next time
        self.offset += len(complete.encode())
        return [json.loads(line) for line in complete.splitlines() if line.strip()]


class Tracker(Callback):
    """What both trackers share: the main process only, rows from ``metrics.jsonl``, the end of the run."""

    def __init__(self) -> None:
        self.tail: MetricsTail | None = None
        self.run_dir: Path | None = None

    def on_fit_start(self, trainer: TrainerView) -> None:
        if not trainer.dist.is_main or trainer.run is None:
            return
        self.run_dir = trainer.run.path
        self.tail = MetricsTail(trainer.run.metrics_file)
        config: dict[str, Any] = {}
        if trainer.run.config_file.exists():
            from polygraft.safe_yaml import load_file

            config = load_file(trainer.run.config_file) or {}
        self.open(trainer, config)

    def on_train_step_end(self, trainer: TrainerView, step: int, loss: Any, batch: Any, output: Any) -> None:
        self.flush()

    def on_validation_end(self, trainer: TrainerView, metrics: dict[str, float]) -> None:
        self.flush()

    def on_results_saved(self, trainer: TrainerView, results: dict[str, Any]) -> None:
        if self.tail is None or self.run_dir is None:
            return
        self.flush()
        plots = sorted(self.run_dir.glob("*.png"))
        self.finish(trainer.state.global_step, numbers(results), plots)
        self.tail = None

    def on_fit_end(self, trainer: TrainerView) -> None:
        self.flush()

    def flush(self) -> None:
        if self.tail is not None:
            for row in self.tail.rows():
                self.write_row(int(row.get(STEP, 0)), numbers(row))

    # what each tracker implements
    def open(self, trainer: TrainerView, config: dict[str, Any]) -> None:
        raise NotImplementedError

    def write_row(self, step: int, values: dict[str, float]) -> None:
        raise NotImplementedError

    def finish(self, step: int, results: dict[str, float], plots: list[Path]) -> None:
        raise NotImplementedError


class TensorBoardTracker(Tracker):
    """TensorBoard event files (``torch.utils.tensorboard``) in ``RUN/tensorboard`` or ``log_dir``.

    Options:
        log_dir: where the event files go (default: the run directory's ``tensorboard`` folder).
    """

    def __init__(self, log_dir: str | None = None) -> None:
        super().__init__()
        self.log_dir = log_dir
        self.writer: Any = None
        self.config: dict[str, str] = {}

    def open(self, trainer: TrainerView, config: dict[str, Any]) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as exc:  # the tensorboard package is missing
            raise ConfigError("callback tensorboard needs the tensorboard package: pip install tensorboard "
                              f"(requirements/scale.txt); {exc}") from None
        directory = Path(self.log_dir) if self.log_dir else trainer.run.path / "tensorboard"  # type: ignore[union-attr]
        step = trainer.state.global_step
        self.writer = SummaryWriter(str(directory), purge_step=step + 1 if step else None)
        self.config = flat_params(config)

    def write_row(self, step: int, values: dict[str, float]) -> None:
        for key, value in values.items():
            self.writer.add_scalar(key, value, step)

    def finish(self, step: int, results: dict[str, float], plots: list[Path]) -> None:
        import numpy as np
        from PIL import Image

        for plot in plots:
            with Image.open(plot) as image:
                self.writer.add_image(plot.stem, np.asarray(image.convert("RGB")), step, dataformats="HWC")
        self.writer.add_hparams(self.config, {f"results/{k}": v for k, v in results.items()}, run_name=".",
                                global_step=step)
        self.writer.close()
        self.writer = None

    def on_fit_end(self, trainer: TrainerView) -> None:
        super().on_fit_end(trainer)
        if self.writer is not None:
            self.writer.flush()


class MLflowTracker(Tracker):
    """An MLflow run: metrics at their steps, the recipe as parameters, results and plots at the end.

    Options:
        tracking_uri: where MLflow stores runs (default: the file store ``RUN/mlruns``).
        experiment: the MLflow experiment (default ``polygraft``).
        run_name: the MLflow run's name (default: the run directory's name).
    """

    def __init__(self, tracking_uri: str | None = None, experiment: str = "polygraft",
                 run_name: str | None = None) -> None:
        super().__init__()
        self.tracking_uri, self.experiment, self.run_name = tracking_uri, experiment, run_name
        self.client: Any = None
        self.run_id: str | None = None  # saved in checkpoints: a resumed run logs into the same MLflow run

    def open(self, trainer: TrainerView, config: dict[str, Any]) -> None:
        assert trainer.run is not None
        uri = self.tracking_uri or (trainer.run.path / "mlruns").resolve().as_uri()
        if uri.startswith("file:"):  # MLflow keeps its file store for those who ask for it
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        from mlflow.entities import Param
        from mlflow.tracking import MlflowClient

        self.client = MlflowClient(tracking_uri=uri)
        if self.run_id is None:
            experiment = self.client.get_experiment_by_name(self.experiment)
            experiment_id = (experiment.experiment_id if experiment is not None
                             else self.client.create_experiment(self.experiment))
            run = self.client.create_run(experiment_id, run_name=self.run_name or trainer.run.path.name)
            self.run_id = run.info.run_id
            params = [Param(key[:250], value[:6000]) for key, value in flat_params(config).items()]
            for start in range(0, len(params), 100):  # MLflow takes at most 100 parameters per batch
                self.client.log_batch(self.run_id, params=params[start : start + 100])

    def write_row(self, step: int, values: dict[str, float]) -> None:
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[Metric(key, value, now, step) for key, value in values.items()])

    def finish(self, step: int, results: dict[str, float], plots: list[Path]) -> None:
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(f"results/{key}", value, now, step) for key, value in results.items()]
        for start in range(0, len(metrics), 1000):
            self.client.log_batch(self.run_id, metrics=metrics[start : start + 1000])
        for path in [*plots, *(p for p in [self.run_dir / "results.json"] if self.run_dir and p.exists())]:
            self.client.log_artifact(self.run_id, str(path))
        self.client.set_terminated(self.run_id)

    def state_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.run_id = state.get("run_id")

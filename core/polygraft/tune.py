"""``polygraft tune``: hyper-parameter search with Optuna, each trial a supervised child run as in ``compare``.

* **Trials.** Each trial is ``python -m polygraft.tune_child RECIPE overrides`` (``polygraft finetune`` plus a
  pruning gate; under ``torchrun`` with ``--nproc-per-node``) into ``DIR/trials/trial-NNNN/``, supervised by
  :func:`polygraft.compare_child.run_child` (its own process group, ``--timeout``, signals passed on).
* **Pruning** reads the run's own validation rows in ``metrics.jsonl`` (written by rank 0 alone, so each validation
  is reported once, however many ranks train) and reports them to the trial; when the pruner says so the child is
  stopped with SIGTERM to its process group. The child waits at each validation for the answer
  (:class:`~polygraft.tune_child.PruningGate`), so a pruned trial stops after the same step on every rank and on
  every machine.
* **The study lives in SQLite** (``DIR/study.db``). Re-running the same command resumes it: a trial the interrupted
  search was running continues from its checkpoint under its own number, finished trials are kept, and no trial is
  run twice. ``DIR`` holds one search: other options for the same ``DIR`` are refused.
* **Seeded.** The sampler is seeded with ``seed + trial number`` for each trial (the grid sampler with ``seed``: it
  shuffles its grid once and gives trial ``n`` the ``n``-th point), so the same command gives the same trials,
  interrupted or not (child runs are deterministic given their recipe's ``trainer.seed``).

Samplers: ``tpe`` (Optuna's TPE, ``startup_trials`` random trials first: a quarter of the trials, 3 to 10, unless
given), ``random``, ``grid`` (every combination; ranges become ``grid_points`` values). Pruners: ``median``
(Optuna's median stopping rule after ``startup_trials`` finished trials) or ``none``.

Example:
    $ polygraft tune examples/text/sentiment.yaml --space trainer.lr=loguniform:1e-5:1e-3 \\
        --space strategy=full,lora --trials 12 --output runs/tune_sentiment
"""

from __future__ import annotations

import contextlib
import fcntl
import math
import os
import shutil
import signal
import sys
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from polygraft.compare_child import ChildResult, Interrupted, run_child
from polygraft.errors import ConfigError
from polygraft.run import RunDirectory
from polygraft.tune_child import DECISION_ENV, GATE_ENV, PARENT_ENV, TRIAL_FILE, read_json, write_json
from polygraft.tune_space import Dimension, check_space, parse_space

SAMPLERS = ("tpe", "random", "grid")
PRUNERS = ("median", "none")
STUDY = "polygraft-tune"
MINIMIZED = ("loss", "eer", "wer", "cer", "error", "perplexity")
"""Metric names (after ``val/``) that are better when lower; every other metric is maximised."""


@dataclass
class Search:
    """One search: what to vary, how to sample and prune, what to optimise (saved with the study)."""

    recipe: str
    space: list[str]
    trials: int
    sampler: str = "tpe"
    pruner: str = "median"
    metric: str = ""
    direction: str = ""
    seed: int = 0
    overrides: list[str] = field(default_factory=list)
    grid_points: int = 5
    startup_trials: int = 0
    nproc_per_node: int = 1

    def identity(self) -> dict[str, Any]:
        """What must match for a re-run of ``DIR`` to resume the same search (``trials`` may grow)."""
        return {k: v for k, v in asdict(self).items() if k != "trials"}


def default_metric(recipe: Any, catalog: Any) -> str:
    return f"val/{getattr(catalog.get('task', recipe.task), 'metric', 'loss')}"


def direction_of(metric: str) -> str:
    name = metric.split("/", 1)[-1].lower()
    return "minimize" if any(name == m or name.endswith(m) for m in MINIMIZED) else "maximize"


def plan(search: Search, catalog: Any) -> tuple[Search, list[Dimension]]:
    """Check everything before a trial runs: the space, the metric, the sampler and pruner, the budget."""
    from polygraft.recipe import Recipe

    dimensions = parse_space(search.space)
    check_space(dimensions, search.recipe, search.overrides, catalog)
    recipe = Recipe.from_yaml(search.recipe, search.overrides)
    if not recipe.task:
        raise ConfigError(f"{search.recipe} has no task: polygraft tune fine-tunes tasks")
    if "val" not in recipe.data:
        raise ConfigError(f"{search.recipe} has no data.val: tune chooses and prunes on validation metrics; add a "
                          "validation split (the test split stays untouched for the final word)")
    if search.sampler not in SAMPLERS or search.pruner not in PRUNERS:
        raise ConfigError(f"--sampler is one of {SAMPLERS} and --pruner one of {PRUNERS}; got {search.sampler!r}, "
                          f"{search.pruner!r}")
    metric = search.metric or default_metric(recipe, catalog)
    if not metric.startswith("val/"):
        raise ConfigError(f"--metric {metric!r}: tune chooses on validation metrics (val/...); choosing on "
                          f"{metric.split('/')[0]} data would make its numbers no longer an honest estimate")
    direction = search.direction or direction_of(metric)
    if direction not in ("maximize", "minimize"):
        raise ConfigError(f"--direction is maximize or minimize, got {direction!r}")
    if search.sampler == "grid":
        size = math.prod(len(d.grid(search.grid_points)) for d in dimensions)
        trials = min(search.trials, size) if search.trials else size
    else:
        if not search.trials:
            raise ConfigError(f"--trials N is needed with --sampler {search.sampler} (the grid sampler defaults to the "
                              "whole grid)")
        trials = search.trials
    if trials < 1 or search.nproc_per_node < 1:
        raise ConfigError(f"--trials and --nproc-per-node must be at least 1, got {trials} and {search.nproc_per_node}")
    startup = search.startup_trials or max(3, min(10, trials // 4))
    done = Search(**{**asdict(search), "metric": metric, "direction": direction, "trials": trials,
                     "startup_trials": startup})
    return done, dimensions


def make_sampler(search: Search, dimensions: Sequence[Dimension], seed: int) -> Any:
    import optuna

    if search.sampler == "grid":
        grid = {d.key: [d.optuna_value(v) for v in d.grid(search.grid_points)] for d in dimensions}
        return optuna.samplers.GridSampler(grid, seed=seed)
    if search.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=search.startup_trials)


def sampler_for(search: Search, dimensions: Sequence[Dimension], number: int) -> Any:
    """The sampler for trial ``number``: TPE and random seeded with ``seed + number`` (a resumed search draws what
    an uninterrupted one would); the grid with ``seed`` alone, as it shuffles its grid with its seed and gives
    trial ``n`` the ``n``-th point (a per-trial seed would repeat points)."""
    return make_sampler(search, dimensions, search.seed if search.sampler == "grid" else search.seed + number)


def make_pruner(search: Search) -> Any:
    import optuna

    if search.pruner == "none":
        return optuna.pruners.NopPruner()
    return optuna.pruners.MedianPruner(n_startup_trials=search.startup_trials, n_warmup_steps=0, interval_steps=1)


@contextlib.contextmanager
def stop_requests() -> Iterator[list[int]]:
    """Record SIGINT and SIGTERM while the search runs (the running trial is stopped and the search ends between
    two steps of its own, never halfway through telling the study)."""
    received: list[int] = []

    def record(number: int, frame: Any) -> None:
        received.append(number)

    try:
        previous = {number: signal.signal(number, record) for number in (signal.SIGINT, signal.SIGTERM)}
    except ValueError:  # not the main thread
        previous = {}
    try:
        yield received
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


@contextlib.contextmanager
def locked(output: Path) -> Iterator[None]:
    """One ``polygraft tune`` per folder at a time (an advisory lock on ``DIR/.tune.lock``)."""
    output.mkdir(parents=True, exist_ok=True)
    with open(output / ".tune.lock", "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise ConfigError(f"{output} is in use by another polygraft tune ({holder}); wait for it or use another "
                              "--output") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}")
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def open_study(search: Search, output: Path) -> Any:
    """The search's study in ``DIR/study.db``, created or resumed; another search's study is refused."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = optuna.storages.RDBStorage(f"sqlite:///{(output / 'study.db').resolve()}")
    direction = optuna.study.StudyDirection.MAXIMIZE if search.direction == "maximize" else \
        optuna.study.StudyDirection.MINIMIZE
    study = optuna.create_study(study_name=STUDY, storage=storage, direction=direction, load_if_exists=True)
    identity = search.identity()
    saved = study.user_attrs.get("search")
    if saved is None:
        study.set_user_attr("search", identity)
    elif saved != identity:
        changed = sorted(k for k in set(saved) | set(identity) if saved.get(k) != identity.get(k))
        details = "; ".join(f"{k}: {saved.get(k)!r} there, {identity.get(k)!r} now" for k in changed[:4])
        raise ConfigError(f"{output} holds another search ({details}); rerun it with the same options to resume it, "
                          "or give a new --output")
    study.pruner = make_pruner(search)
    return study


class PruneWatch:
    """Reads a trial's ``metrics.jsonl`` while it trains, reports each validation and answers the child's gate."""

    def __init__(self, trial: Any, run_dir: Path, metric: str, *, prune: bool, stop: list[int] | None = None) -> None:
        self.trial, self.metric, self.prune = trial, metric, prune
        self.stop = stop if stop is not None else []  # signals the search received: stop the child
        self.metrics = RunDirectory(run_dir, enabled=False).metrics_file
        self.gate, self.decision = run_dir / ".tune-gate.json", run_dir / ".tune-decision.json"
        self.offset = 0
        self.reported: dict[int, float] = {}
        self.answered: set[int] = set()
        self.pruned_at: int | None = None
        self.seen: set[str] = set()  # validation metric names the run reports

    def clear(self) -> None:
        for file in (self.gate, self.decision):
            file.unlink(missing_ok=True)

    def __call__(self) -> bool:
        if self.stop:
            return True
        self.read()
        waiting = read_json(self.gate)
        step = waiting.get("step") if isinstance(waiting, dict) else None
        if not isinstance(step, int) or step in self.answered:
            return False
        if step not in self.reported and (self.metric in self.seen or not self.seen):
            return False  # its validation row is not written yet
        self.answered.add(step)
        prune = self.prune and step in self.reported and self.trial.should_prune()
        write_json(self.decision, {"step": step, "prune": bool(prune)})
        if prune:
            self.pruned_at = step
        return bool(prune)

    def read(self) -> None:
        """Report every complete validation row written since the last read (once per step)."""
        import json

        if not self.metrics.is_file():
            return
        with open(self.metrics, "rb") as handle:
            handle.seek(self.offset)
            data = handle.read()
        complete = data[: data.rfind(b"\n") + 1]
        self.offset += len(complete)
        for line in complete.decode("utf-8", errors="replace").splitlines():
            try:
                row = json.loads(line)
            except ValueError:
                continue
            self.seen.update(k for k in row if k.startswith("val/"))
            value, step = row.get(self.metric), row.get("step")
            if isinstance(value, int | float) and isinstance(step, int) and math.isfinite(value) \
                    and step not in self.reported and self.pruned_at is None:
                self.reported[step] = float(value)
                self.trial.report(float(value), step)  # a step reported before the search was resumed is ignored


def child_command(search: Search, overrides: Sequence[str]) -> list[str]:
    module = ["-m", "polygraft.tune_child", search.recipe, *overrides]
    if search.nproc_per_node > 1:
        return [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={search.nproc_per_node}", *module]
    return [sys.executable, *module]


def _resolved(recipe: str, overrides: Sequence[str]) -> dict[str, Any]:
    from polygraft.recipe import Recipe

    return Recipe.from_yaml(recipe, overrides).to_dict()


def _same_run(saved: dict[str, Any], wanted: dict[str, Any]) -> bool:
    """The same recipe, whether it was started fresh (``overwrite``) or resumed."""
    def strip(config: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in config.items() if k not in ("overwrite", "resume")}

    return strip(saved) == strip(wanted)


def run_trial(study: Any, trial: Any, search: Search, dimensions: Sequence[Dimension], output: Path, *,
              timeout: float | None, log: Any, stop: list[int] | None = None) -> dict[str, Any]:
    """Train one trial's child run (resuming it when it has a checkpoint) and tell the study how it ended."""
    from optuna.trial import TrialState

    from polygraft.compare import exit_status, last_error

    params = {d.key: d.value_of(trial.params[d.key]) for d in dimensions}
    run_dir = output / "trials" / f"trial-{trial.number:04d}"
    run = RunDirectory(run_dir, enabled=False)
    overrides = [*search.overrides, *(d.override(params[d.key]) for d in dimensions), f"output_dir={run_dir}",
                 "trainer.progress=false"]
    finished = run.results_file.is_file() and run.config_file.is_file() and _same_run(
        run.read_config(), _resolved(search.recipe, overrides))
    resumed = run.last_checkpoint.is_file() and not run.results_file.is_file()
    if resumed:
        overrides.append("resume=last")
    elif not finished and run_dir.exists():  # what an earlier, other attempt left: start clean (the child's own
        shutil.rmtree(run_dir)               # overwrite=true would also delete the train.log written here)
    shown = " ".join(f"{k}={v}" for k, v in params.items())
    how = " (resumed)" if resumed else " (finished before the search was stopped)" if finished else ""
    print(f"[tune] trial {trial.number + 1}/{search.trials}{how}: {shown}", file=log, flush=True)
    stop = stop if stop is not None else []
    watch = PruneWatch(trial, run_dir, search.metric, prune=search.pruner != "none", stop=stop)
    started = time.monotonic()
    if finished:
        watch.read()
        result = ChildResult(0, "")
    else:
        watch.clear()
        env = {**os.environ, GATE_ENV: str(watch.gate), DECISION_ENV: str(watch.decision),
               PARENT_ENV: str(os.getpid())}
        result = run_child(child_command(search, overrides), log_file=run.log_file, timeout=timeout, env=env,
                           watch=watch, poll_s=0.02)
        if stop:  # the search was told to stop while starting this trial: it stays running, to resume
            raise Interrupted(signal.Signals(stop[0]).name)
        watch.read()
        watch.clear()
    record = {"number": trial.number, "params": params, "run_dir": str(run_dir),
              "seconds": round(time.monotonic() - started, 2),
              "steps": int((read_json(run_dir / TRIAL_FILE) or {}).get("steps", 0))}
    results = run.read_results() if run.results_file.is_file() and not result.stopped else {}
    if watch.pruned_at is not None:
        state, value = TrialState.PRUNED, None
        record.update(state="pruned", value=watch.reported.get(watch.pruned_at), pruned_at=watch.pruned_at)
        with contextlib.suppress(OSError):  # a pruned trial never resumes: its checkpoint is dead weight
            shutil.rmtree(run.path / "checkpoints")
    elif search.metric in results:
        state, value = TrialState.COMPLETE, float(results[search.metric])
        record.update(state="complete", value=value, steps=int(results.get("train/steps", record["steps"])))
    else:
        state, value = TrialState.FAIL, None
        if results:
            found = sorted(k for k in results if k.startswith("val/"))
            raise ConfigError(f"--metric {search.metric!r} is not among the metrics the trial reports: {found}")
        error = "timed out" if result.timed_out else f"{exit_status(result.returncode)}: {last_error(result.output)}"
        record.update(state="failed", value=None, error=f"{error} (log: {run.log_file})")
    for key in ("run_dir", "steps", "seconds", "error", "pruned_at"):
        if key in record:
            trial.set_user_attr(key, record[key])
    try:
        study.tell(trial, value, state=state)
    except RuntimeError as exc:  # GridSampler calls study.stop() when its grid is used up: only allowed in optimize
        if "stop" not in str(exc):
            raise
    outcome = {"pruned": f"pruned after step {watch.pruned_at} ({search.metric} {record['value']:.4g})",
               "complete": f"{search.metric} {record['value']:.4g} in {record['steps']} steps",
               "failed": f"failed: {record.get('error')}"}[record["state"]]
    print(f"[tune] trial {trial.number + 1}: {outcome}", file=log, flush=True)
    return record


def tune(search: Search, output: str | Path, *, timeout: float | None = None, log: Any = None) -> dict[str, Any]:
    """Run (or resume) the search and write ``tune.md``, ``tune.json``, ``tune.png`` and ``best.yaml`` into
    ``output``; returns what ``tune.json`` holds. Progress lines go to ``log`` (standard error by default)."""
    log = log or sys.stderr
    from polygraft.plugins import build_catalog
    from polygraft.tune_report import write_reports

    search, dimensions = plan(search, build_catalog())
    if timeout is not None and timeout <= 0:
        raise ConfigError(f"--timeout must be a positive number of seconds, got {timeout}")
    output = Path(output)
    with locked(output), warnings.catch_warnings(), stop_requests() as stop:
        warnings.simplefilter("ignore")  # optuna's experimental-feature and duplicate-report warnings
        study = open_study(search, output)
        import optuna
        from optuna.trial import TrialState

        distributions = {d.key: d.to_optuna() for d in dimensions}
        while True:
            if stop:
                raise Interrupted(signal.Signals(stop[0]).name)
            stale = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.RUNNING]
            finished = [t for t in study.get_trials(deepcopy=False) if t.state.is_finished()]
            if not stale and len(finished) >= search.trials:
                break
            number = stale[0].number if stale else len(study.trials)
            study.sampler = sampler_for(search, dimensions, number)
            if stale:  # the search was interrupted during this trial: go on with it, same number, same values
                trial = optuna.trial.Trial(study, stale[0]._trial_id)
            else:
                trial = study.ask(fixed_distributions=distributions)
            run_trial(study, trial, search, dimensions, output, timeout=timeout, log=log, stop=stop)
        return write_reports(study, search, dimensions, output)

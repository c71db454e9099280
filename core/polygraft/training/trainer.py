"""The shared Trainer: one readable loop for fine-tuning tasks and pretraining objectives in every modality.

It wires pieces that live in their own modules: devices and precision (precision.py), torch.distributed
(distributed.py; FSDP2 in fsdp.py, its checkpoints in dcp.py), optimizer and learning-rate schedule (optim.py), the plan of steps and when to validate and
checkpoint (schedule.py), checkpoints and resume (checkpoint.py, resume.py), logging (logger.py), the data loaders
and input cache (``polygraft.inputs``), callbacks (``polygraft.interfaces.Callback``) and the run directory
(``polygraft.run``). It knows no modality: what a batch holds is the training module's business.

One optimizer step is one chunk of ``grad_accum`` micro-batches; an epoch's last chunk may be shorter, and is stepped
too (its loss averaged over its micro-batches): see ``polygraft.training.schedule``.

Example:
    >>> import tempfile, polygraft
    >>> data = polygraft.load_dataset("synthetic-classification", size=64, in_features=4)
    >>> task = polygraft.create_task("classification", backbone="toy", label_names=data.label_names,
    ...                              backbone_options={"in_features": 4})
    >>> trainer = polygraft.Trainer(polygraft.TrainerConfig(max_steps=20, batch_size=16, progress=False),
    ...                             output_dir=tempfile.mkdtemp())
    >>> result = trainer.fit(task, train_data=data, val_data=data)
    >>> result.metrics["val/accuracy"] > 0.5
    True
"""

from __future__ import annotations

import contextlib
import gc
import itertools
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch.nn.parallel import DistributedDataParallel

from polygraft.features import Batch, batch_size_of, move_to_device
from polygraft.inputs.cache.modes import cache_mode
from polygraft.inputs.cache.outputs import KeptOutputs, OutputsRun, keep_all
from polygraft.inputs.datasets import raise_worker_errors
from polygraft.inputs.loaders import Loaders, LoaderSettings, check_sizes, position_loader
from polygraft.interfaces import Callback, DataSource, StepOutput, TrainingModule
from polygraft.run import RunDirectory
from polygraft.training.checks import check_first_features, nonfinite_line, out_of_memory_named
from polygraft.training.config import TrainerConfig
from polygraft.training.dcp import checkpoint_folder
from polygraft.training.distributed import DistributedContext
from polygraft.training.evaluation import evaluate_loader
from polygraft.training.fsdp import ShardedModule
from polygraft.training.logger import LossWindow, TrainingLogger
from polygraft.training.optim import build_optimizer, build_scheduler, default_param_groups
from polygraft.training.outputs import write_checkpoint, write_model, write_results
from polygraft.training.precision import Precision, pick_device
from polygraft.training.resume import restore
from polygraft.training.schedule import Schedule, StepPlan, chunk_sizes
from polygraft.training.signals import Received, stop_on_signals
from polygraft.training.usage import Usage

if TYPE_CHECKING:
    from polygraft.interfaces import FinetuneStrategy


@dataclass
class TrainerState:
    """Counters saved in every checkpoint."""

    global_step: int = 0
    epoch: int = 0
    batches_in_epoch: int = 0  # micro-batches of this epoch already trained on
    samples_seen: int = 0
    skipped_nonfinite: int = 0


@dataclass
class FitResult:
    """What ``fit`` returns: final metrics (flat names), the run directory, why it stopped, per-split skips."""

    metrics: dict[str, float]
    run_dir: Path | None
    stop_reason: str = "finished"
    history: list[dict[str, Any]] = field(default_factory=list)
    skipped: dict[str, Any] = field(default_factory=dict)
    interrupted: str | None = None  # the signal that stopped the run (SIGTERM, SIGUSR1): resume it with resume=last


class Trainer:
    """Trains any TrainingModule (a Task or a PretrainingObjective) on CPU, MPS, CUDA, or DDP / FSDP under torchrun."""

    def __init__(self, config: TrainerConfig | Mapping[str, Any] | None = None, *,
                 output_dir: str | Path | None = None, callbacks: Sequence[Callback] = (),
                 strategies: Sequence[FinetuneStrategy] = (), resume: str | Path | None = None,
                 run_config: Mapping[str, Any] | None = None, overwrite: bool = False) -> None:
        self.config = config if isinstance(config, TrainerConfig) else TrainerConfig(**dict(config or {}))
        self.output_dir = Path(output_dir) if output_dir is not None else None
        self.user_callbacks = list(callbacks)
        self.strategies = list(strategies)
        self.resume = resume
        self.overwrite = overwrite  # a fresh run may replace an earlier run in output_dir
        self.run_config = dict(run_config) if run_config is not None else {"trainer": asdict(self.config)}
        self.dist = DistributedContext.from_environment()
        self.device = pick_device(self.config.device, local_rank=self.dist.local_rank)
        self.precision = Precision(self.config.precision, self.device)
        self.state = TrainerState()
        self.stage = "train"  # "val" or "test" while evaluating
        self.run: RunDirectory | None = None
        self.module: TrainingModule | None = None
        self.model: torch.nn.Module | None = None  # what forward is called on (DDP/compiled wrapper)
        self.sharded: ShardedModule | None = None  # the FSDP copy that trains (trainer.distributed: fsdp)
        self.optimizer: torch.optim.Optimizer | None = None
        self.scheduler: torch.optim.lr_scheduler.LRScheduler | None = None
        self.callbacks: list[Callback] = []
        self.logger: TrainingLogger | None = None
        self.max_steps = 0
        self.results: dict[str, Any] = {}  # what callbacks add to results.json
        self.loaders: Loaders | None = None  # DataLoaders and the input cache of the current fit
        self.kept = KeptOutputs()  # per-example outputs strategies asked for (a distillation teacher's)
        self.usage = Usage(self.device)  # time, parameters and memory of the fit
        self.schedule = Schedule(self.config.eval_every, self.config.checkpoint_every)
        self._stop_reason: str | None = None
        # loop state of one fit
        self._metrics: dict[str, float] = {}  # the latest validation metrics
        self._validated_at = -1  # global step of the latest validation
        self._window = LossWindow(self.device)
        self._signal = Received()  # a stop signal (SIGTERM...) received during the fit
        self._checkpointed_at = -1  # global step of the newest checkpoint on disk

    # ----------------------------------------------------------------- public API
    def fit(self, module: TrainingModule, *, train_data: DataSource, val_data: DataSource | None = None,
            test_data: DataSource | None = None) -> FitResult:
        """Train, validate, checkpoint; save the model; then evaluate ``test_data`` (``test/...`` metrics) and
        write the results into the run directory."""
        self.usage.fit_called()
        self.dist.setup(self.device)
        self.run = RunDirectory(self.output_dir, enabled=self.dist.is_main) if self.output_dir else None
        deterministic = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
        try:
            with self.run.locked() if self.run else contextlib.nullcontext(), stop_on_signals() as self._signal:
                if self.run is not None:  # before anything is written: one run per folder
                    self.run.begin(resume=self.resume is not None, overwrite=self.overwrite)
                return self._fit(module, train_data, val_data, test_data)
        finally:
            torch.use_deterministic_algorithms(deterministic[0], warn_only=deterministic[1])
            if self.logger is not None:
                self.logger.close()
            self.model = None  # release DDP's reducer while the process group still exists
            gc.collect()
            self.dist.teardown()

    def _fit(self, module: TrainingModule, train_data: DataSource, val_data: DataSource | None,
             test_data: DataSource | None) -> FitResult:
        train_loader, val_loader = self._setup(module, train_data, val_data)
        splits = {split: data for split, data in (("train", train_data), ("val", val_data), ("test", test_data))
                  if data is not None}
        if self.run is not None:
            self.run.write_data_report({split: data.describe() for split, data in splits.items()})
        for callback in self.callbacks:
            callback.on_fit_start(self)
        self.usage.start(self.module)  # the sharded copy under fsdp
        metrics = self._train(train_loader, val_loader)
        if self._signal:  # stopped by the scheduler: the checkpoint is written, the run is not finished
            return self._interrupted(splits)
        if self.sharded is not None:  # every rank: the trained weights back into the module that was passed
            self.module = self.model = self.sharded.gather()
        self.usage.stop()
        self.add_results(self.usage.report(samples=self.state.samples_seen))
        self.message(self.usage.shares())
        for strategy in self.strategies:
            strategy.finalize(module)
        for callback in self.callbacks:
            callback.on_fit_end(self)
        if self.run is not None and self.run.enabled:
            write_model(self)  # before test evaluation, so a failing test split never loses the training
        if test_data is not None:
            metrics = {**metrics, **self._validate(self._eval_loader(module, test_data), prefix="test")}
        skipped = {split: data.skip_report() for split, data in splits.items()}
        self._finish(metrics, skipped)
        return FitResult(metrics=metrics, run_dir=self.run.path if self.run else None,
                         stop_reason=self._stop_reason or "finished", history=self.logger.history, skipped=skipped)

    def _interrupted(self, splits: Mapping[str, DataSource]) -> FitResult:
        name, step = self._signal.name, self.state.global_step
        where = "no run directory, so nothing"
        if self.run is not None:
            last = self.run.last_checkpoint
            where = str(checkpoint_folder(last) if self.config.distributed == "fsdp" else last)
        self.message(f"stopped by {name} at step {step}: {where} holds the training so far; run the same command "
                     "with resume=last to go on")
        return FitResult(metrics=dict(self._metrics), run_dir=self.run.path if self.run else None,
                         stop_reason=f"stopped by {name} at step {step}", history=self.logger.history,
                         skipped={split: data.skip_report() for split, data in splits.items()}, interrupted=name)

    def evaluate(self, module: TrainingModule, data: DataSource, *, prefix: str = "val") -> dict[str, float]:
        """Loss and metrics of ``module`` on ``data`` (no training)."""
        self.dist.setup(self.device)
        try:
            module.to(self.device)
            self.module = module
            return self._validate(self._eval_loader(module, data), prefix=prefix)
        finally:
            self.dist.teardown()

    def request_stop(self, reason: str) -> None:
        """Ask the loop to stop after the current step (used by early stopping)."""
        self._stop_reason = reason

    def on_trainable_changed(self) -> None:
        """Call after changing ``requires_grad`` during training (gradual unfreezing): re-wraps DDP (FSDP reads
        the flags at every all-gather)."""
        self.usage.trainable_changed()
        if self.dist.enabled and self.sharded is None:
            self._wrap_model()

    def add_results(self, values: Mapping[str, Any]) -> None:
        """Extra entries for ``results.json`` (callbacks use it, e.g. ``train/truncated_examples``)."""
        self.results.update(values)

    def message(self, text: str) -> None:
        """One line for the person watching (on the main process, beside the progress bar)."""
        if self.logger is not None and self.dist.is_main:
            self.logger.message(text)

    # ----------------------------------------------------------------- set-up
    def _setup(self, module: TrainingModule, train_data: DataSource, val_data: DataSource | None) -> tuple[Any, Any]:
        """Build everything a fit needs. Two orderings matter: strategies set the module up (freeze, add
        adapters) before the optimizer collects its parameters, and a resume restores the checkpoint only once
        module, optimizer, scheduler and callbacks all exist."""
        cfg = self.config
        torch.manual_seed(cfg.seed)
        if cfg.deterministic:  # process-wide: fit() restores the previous setting when it returns
            torch.use_deterministic_algorithms(True, warn_only=True)
        check_sizes(train_data, batch_size=cfg.batch_size, world_size=self.dist.world_size,
                    drop_last=cfg.drop_last, split="train")
        self.module = module
        module.fit_data(train_data)  # fitted preprocessing (a scaler's statistics) and targets, if any
        for strategy in self.strategies:
            strategy.setup(module)
        module.to(self.device)
        if cfg.uses_channels_last(module.backbone):
            module.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # torch's stubs omit it
        groups = next((g for s in self.strategies
                       if (g := s.param_groups(module, lr=cfg.lr, weight_decay=cfg.weight_decay)) is not None), None)
        groups = groups or default_param_groups(module, weight_decay=cfg.weight_decay)
        if cfg.distributed == "fsdp" and self.dist.enabled:  # from here on the sharded copy trains
            self.sharded = ShardedModule(module, device=self.device, world_size=self.dist.world_size,
                                         dtype=self.precision.dtype)
            self.module, groups = self.sharded.module, self.sharded.map_groups(groups)
        self.optimizer = build_optimizer(groups, cfg, self.device)
        plan = StepPlan.of(cfg, train_size=len(train_data), world_size=self.dist.world_size)
        self.max_steps = plan.max_steps
        self.loaders = self._loaders()  # a fresh input cache per fit
        train_loader, val_loader = self.loaders.for_fit(
            train_data, val_data, train=module.data_pipeline(training=True),
            evaluation=module.data_pipeline(training=False), epochs=plan.epochs, validations=plan.validations)
        self.kept = keep_all(self.strategies, module, train_data, OutputsRun(
            batch_size=cfg.eval_batch_size or cfg.batch_size, device=self.device, cache_mode=cache_mode(cfg.cache),
            autocast=self.precision.autocast, progress=cfg.progress and self.dist.is_main))
        self.scheduler = build_scheduler(self.optimizer, cfg, self.max_steps)
        self._wrap_model()
        self.callbacks = [*self.user_callbacks, *(c for s in self.strategies for c in s.callbacks()),
                          *module.callbacks()]
        resumed: list[str] = []
        if self.resume is not None:
            resumed = restore(self, self.resume)
            self._checkpointed_at = self.state.global_step  # already on disk: a finished run is not saved again
        elif self.run is not None:
            self.run.write_config(self.run_config)
        self.logger = TrainingLogger(self.run, total_steps=self.max_steps,
                                     show_progress=cfg.progress and self.dist.is_main,
                                     initial_step=self.state.global_step)
        for line in [*self.loaders.lines(), *self.kept.notes, *(self.sharded.lines if self.sharded else []),
                     *resumed]:
            self.message(line)
        if cfg.channels_last == "auto" and cfg.uses_channels_last(module.backbone):
            self.message("channels-last memory format: on (trainer.channels_last: auto, the backbone is "
                         "convolutional; false turns it off)")
        check_first_features(self.module.backbone)
        return train_loader, val_loader

    def _loaders(self) -> Loaders:
        return Loaders(LoaderSettings.of(self.config), self.dist, pin_memory=self.device.type == "cuda")

    def _eval_loader(self, module: TrainingModule, data: DataSource) -> Any:
        """The loader of a test split (or of ``evaluate``): read once, so nothing is kept."""
        if self.loaders is None:
            self.loaders = self._loaders()
        return self.loaders.evaluation(data, module.data_pipeline(training=False), split="test")[0]

    # ----------------------------------------------------------------- the loop
    def _train(self, train_loader: Any, val_loader: Any) -> dict[str, float]:
        cfg, state = self.config, self.state
        self.module.train()
        while not self._done():
            position_loader(train_loader, epoch=state.epoch, skip_batches=state.batches_in_epoch, seed=cfg.seed)
            for callback in self.callbacks:
                callback.on_train_epoch_start(self, state.epoch)
            batches = raise_worker_errors(train_loader)
            for size in chunk_sizes(len(train_loader), cfg.grad_accum):  # the loader starts where the epoch stands
                done = self._train_step(itertools.islice(batches, size), size)
                if done is not None:
                    self._after_step(val_loader, *done)
                if self._done():
                    break
            else:  # the epoch ran out
                self._end_epoch(val_loader)
        if val_loader is not None and state.global_step != self._validated_at and not self._signal:
            self._metrics = self._validate_and_log(val_loader)
        self._save_checkpoint()
        return self._metrics

    def _done(self) -> bool:
        return self.state.global_step >= self.max_steps or self._stop_reason is not None or bool(self._signal)

    def _train_step(self, micro_batches: Iterator[Batch], size: int) -> tuple[Batch, StepOutput] | None:
        """One optimizer step over the next ``size`` micro-batches (gradients accumulate across them; DDP syncs on
        the last). Returns the last micro-batch and its output, or ``None`` when a non-finite loss skipped the step
        (its remaining micro-batches are read and dropped, so the epoch stays aligned)."""
        for callback in self.callbacks:
            callback.on_train_step_start(self, self.state.global_step)
        done: tuple[Batch, StepOutput] | None = None
        for position, batch in enumerate(micro_batches, start=1):
            self.state.batches_in_epoch += 1
            output = self._micro_step(batch, last=position == size, scale=size)
            if output is None:
                self.state.batches_in_epoch += sum(1 for _ in micro_batches)
                return None
            done = batch, output
        if done is None:
            return None
        self._optimizer_step(micro_batches=size)
        return done

    def _micro_step(self, batch: Batch, *, last: bool, scale: int) -> StepOutput | None:
        """Forward and backward of one micro-batch, its loss divided by the step's number of micro-batches."""
        batch = self._to_device(batch)
        if self.kept:
            batch = self.kept.attach(batch, self.device)
        if self.sharded is not None:
            self.sharded.sync_gradients(last)
        sync = contextlib.nullcontext() if last or not self.dist.enabled or self.sharded else self.model.no_sync()
        with sync, out_of_memory_named(self.state.global_step + 1, batch_size_of(batch)):
            with self.precision.autocast():
                output = self.model(batch)
                for strategy in self.strategies:  # distillation adds its terms to the module's loss
                    output = strategy.training_loss(self.module, batch, output)
            if not torch.isfinite(output.loss):
                self._nonfinite(output.loss)
                return None
            self.precision.backward(output.loss / scale)
        self._window.add(output.loss.detach(), batch_size_of(batch) * self.dist.world_size)
        for callback in self.callbacks:
            callback.on_train_batch_end(self, batch, output)
        return output

    def _optimizer_step(self, *, micro_batches: int) -> None:
        cfg = self.config
        self.precision.unscale(self.optimizer)
        if cfg.clip_grad_norm:
            params = [p for group in self.optimizer.param_groups for p in group["params"] if p.grad is not None]
            torch.nn.utils.clip_grad_norm_(params, cfg.clip_grad_norm)
        for callback in self.callbacks:
            callback.on_before_optimizer_step(self, self.state.global_step)
        self.precision.step(self.optimizer)
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        self.state.global_step += 1
        self.state.samples_seen += cfg.batch_size * micro_batches * self.dist.world_size

    def _after_step(self, val_loader: Any, batch: Batch, output: StepOutput) -> None:
        """Per-step work after the weights changed: progress, step callbacks, logging, validation, checkpoint."""
        cfg, step = self.config, self.state.global_step
        self.logger.advance()
        step_loss = self._window.end_step()
        for callback in self.callbacks:
            callback.on_train_step_end(self, step, step_loss, batch, output)
        if step % cfg.log_every == 0 or step == self.max_steps:
            loss, samples_per_s = self._window.flush()
            self.logger.log({"step": step, "epoch": self.state.epoch, "train/loss": self.dist.mean(loss, self.device),
                             "train/lr": self.scheduler.get_last_lr()[0], "train/samples_per_s": samples_per_s})
        self._run_due(self.schedule.after_step(step), val_loader)

    def _end_epoch(self, val_loader: Any) -> None:
        state = self.state
        for callback in self.callbacks:
            callback.on_train_epoch_end(self, state.epoch)
        state.epoch += 1
        state.batches_in_epoch = 0
        self._run_due(self.schedule.after_epoch(), val_loader)

    def _run_due(self, due: Any, val_loader: Any) -> None:
        if due.validate and val_loader is not None and self.state.global_step != self._validated_at:
            self._metrics = self._validate_and_log(val_loader)
        if due.checkpoint:
            self._save_checkpoint()

    def _nonfinite(self, loss: torch.Tensor) -> None:
        line = nonfinite_line(self, loss)  # raises unless trainer.skip_nonfinite
        self.state.skipped_nonfinite += 1
        self.optimizer.zero_grad(set_to_none=True)
        self._window.drop_step()
        self.message(line)

    # ----------------------------------------------------------------- evaluation
    def _validate_and_log(self, loader: Any) -> dict[str, float]:
        with self.usage.timed("validation"):
            metrics = self._validate(loader, prefix="val")
        self.logger.log({"step": self.state.global_step, "epoch": self.state.epoch, **metrics})
        self._validated_at = self.state.global_step
        return metrics

    def _validate(self, loader: Any, *, prefix: str) -> dict[str, float]:
        return evaluate_loader(self, loader, prefix=prefix)

    # ----------------------------------------------------------------- pieces
    def _to_device(self, batch: Batch) -> Batch:
        """Everything but ``meta`` goes to the device once (``meta`` too when the module asks)."""
        if self.module.meta_on_device:
            return move_to_device(batch, self.device)
        return {key: value if key == "meta" else move_to_device(value, self.device) for key, value in batch.items()}

    def _wrap_model(self) -> None:
        model: torch.nn.Module = self.module
        if self.dist.enabled and self.sharded is None:
            ids = [self.device.index] if self.device.type == "cuda" else None
            model = DistributedDataParallel(model, device_ids=ids)
        if self.config.compile:
            model = torch.compile(model)  # type: ignore[assignment]  # a module that forwards to the compiled one
        self.model = model

    def _save_checkpoint(self) -> None:
        every_rank = self.config.distributed == "fsdp"  # each writes its shards
        if self.run is None or not (self.run.enabled or every_rank) or self._checkpointed_at == self.state.global_step:
            return
        with self.usage.timed("checkpoint"):
            path = write_checkpoint(self)
        self._checkpointed_at = self.state.global_step
        for callback in self.callbacks if self.run.enabled else ():
            callback.on_checkpoint_saved(self, path)

    def _finish(self, metrics: dict[str, float], skipped: dict[str, Any]) -> None:
        if self.run is not None and self.run.enabled:
            write_results(self, metrics, skipped)
        if self._stop_reason:
            self.message(self._stop_reason)

"""The shared Trainer: one readable loop for fine-tuning tasks and pretraining objectives in every modality.

It wires pieces that live in their own modules: devices and precision (precision.py), torch.distributed
(distributed.py), optimizer and schedule (optim.py), data loading (data.py), checkpoints (checkpoint.py),
callbacks (callbacks.py, builtin_callbacks.py), logging (logger.py) and the run directory (run.py).

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
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.nn.parallel import DistributedDataParallel

from polygraft.errors import TrainingError
from polygraft.features import batch_size_of, move_to_device, truncated_in
from polygraft.finetune.base import FinetuneStrategy
from polygraft.interfaces import DataSource, TrainingModule
from polygraft.run import RunDirectory
from polygraft.training import checkpoint as ckpt
from polygraft.training.builtin_callbacks import BestCheckpoint, EarlyStopping
from polygraft.training.callbacks import Callback
from polygraft.training.config import TrainerConfig
from polygraft.training.data import check_sizes, make_loader, position_loader
from polygraft.training.distributed import DistributedContext
from polygraft.training.logger import TrainingLogger
from polygraft.training.optim import build_optimizer, build_scheduler, default_param_groups
from polygraft.training.precision import Precision, pick_device
from polygraft.training.resume import checkpoint_state, restore


@dataclass
class TrainerState:
    """Counters saved in every checkpoint."""

    global_step: int = 0
    epoch: int = 0
    batches_in_epoch: int = 0  # micro-batches of this epoch already trained on
    samples_seen: int = 0
    skipped_nonfinite: int = 0
    truncated_examples: int = 0  # inputs cut to the model's length limit (batch["inputs"]["truncated"])


@dataclass
class FitResult:
    """What ``fit`` returns: final metrics (flat names), the run directory and why it stopped."""

    metrics: dict[str, float]
    run_dir: Path | None
    stop_reason: str = "finished"
    history: list[dict[str, Any]] = field(default_factory=list)


class Trainer:
    """Trains any TrainingModule (a Task or a PretrainingObjective) on CPU, MPS, CUDA, or DDP under torchrun."""

    def __init__(self, config: TrainerConfig | Mapping[str, Any] | None = None, *,
                 output_dir: str | Path | None = None, callbacks: Sequence[Callback] = (),
                 strategies: Sequence[FinetuneStrategy] = (), resume: str | Path | None = None,
                 run_config: Mapping[str, Any] | None = None) -> None:
        self.config = config if isinstance(config, TrainerConfig) else TrainerConfig(**dict(config or {}))
        self.output_dir = Path(output_dir) if output_dir is not None else None
        self.user_callbacks = list(callbacks)
        self.strategies = list(strategies)
        self.resume = resume
        self.run_config = dict(run_config) if run_config is not None else {"trainer": asdict(self.config)}
        self.dist = DistributedContext.from_environment()
        self.device = pick_device(self.config.device, local_rank=self.dist.local_rank)
        self.precision = Precision(self.config.precision, self.device)
        self.state = TrainerState()
        self.run: RunDirectory | None = None
        self.module: TrainingModule | None = None
        self.model: torch.nn.Module | None = None  # what forward is called on (DDP/compiled wrapper)
        self.optimizer: torch.optim.Optimizer | None = None
        self.scheduler: torch.optim.lr_scheduler.LRScheduler | None = None
        self.callbacks: list[Callback] = []
        self.max_steps = 0
        self._stop_reason: str | None = None
        self._truncated: torch.Tensor | None = None
        self.logger: TrainingLogger | None = None

    # ----------------------------------------------------------------- public API
    def fit(self, module: TrainingModule, *, train_data: DataSource, val_data: DataSource | None = None,
            test_data: DataSource | None = None) -> FitResult:
        """Train, validate, checkpoint; evaluate ``test_data`` at the end (``test/...`` metrics); save the
        model and results into the run directory."""
        cfg = self.config
        self.dist.setup(self.device)
        try:
            return self._fit(module, train_data, val_data, test_data, cfg)
        finally:
            if self.logger is not None:
                self.logger.close()
            self.model = None  # release DDP's reducer while the process group still exists
            gc.collect()
            self.dist.teardown()

    def _fit(self, module: TrainingModule, train_data: DataSource, val_data: DataSource | None,
             test_data: DataSource | None, cfg: TrainerConfig) -> FitResult:
        torch.manual_seed(cfg.seed)
        if cfg.deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)
        check_sizes(train_data, batch_size=cfg.batch_size, world_size=self.dist.world_size,
                    drop_last=cfg.drop_last, split="train")
        self.module = module
        for strategy in self.strategies:
            strategy.setup(module)
        module.to(self.device)
        if cfg.channels_last:
            module.to(memory_format=torch.channels_last)
        groups = next((g for s in self.strategies
                       if (g := s.param_groups(module, lr=cfg.lr, weight_decay=cfg.weight_decay)) is not None), None)
        self.optimizer = build_optimizer(groups or default_param_groups(module, weight_decay=cfg.weight_decay),
                                         cfg, self.device)
        pin = self.device.type == "cuda"
        train_loader = make_loader(train_data, module.data_pipeline(training=True), batch_size=cfg.batch_size,
                                   shuffle=True, seed=cfg.seed, drop_last=cfg.drop_last,
                                   num_workers=cfg.num_workers, dist=self.dist, pin_memory=pin,
                                   group_by_length=cfg.group_by_length)
        val_loader = self._eval_loader(module, val_data) if val_data is not None else None
        steps_per_epoch = max(1, len(train_loader) // cfg.grad_accum)
        self.max_steps = cfg.max_steps if cfg.max_steps is not None else steps_per_epoch * (cfg.max_epochs or 1)
        self.scheduler = build_scheduler(self.optimizer, cfg, self.max_steps)
        self._wrap_model()
        self.run = RunDirectory(self.output_dir, enabled=self.dist.is_main) if self.output_dir else None
        self.callbacks = self._build_callbacks()
        if self.resume is not None:
            restore(self, self.resume)
        elif self.run is not None:
            self.run.write_config(self.run_config)
            if self.run.metrics_file.exists():
                self.run.metrics_file.unlink()
        self.logger = TrainingLogger(self.run, total_steps=self.max_steps,
                                     show_progress=cfg.progress and self.dist.is_main,
                                     initial_step=self.state.global_step, tensorboard=cfg.tensorboard)
        if self.run is not None:
            self.run.write_json("data.json", {"train": train_data.describe(),
                                              "val": val_data.describe() if val_data is not None else None})
        for callback in self.callbacks:
            callback.on_fit_start(self)
        metrics = self._train(train_loader, val_loader)
        for strategy in self.strategies:
            strategy.finalize(module)
        for callback in self.callbacks:
            callback.on_fit_end(self)
        if test_data is not None:
            metrics = {**metrics, **self._validate(self._eval_loader(module, test_data), prefix="test")}
        self._finish(metrics)
        return FitResult(metrics=metrics, run_dir=self.run.path if self.run else None,
                         stop_reason=self._stop_reason or "finished", history=self.logger.history)

    def evaluate(self, module: TrainingModule, data: DataSource, *, prefix: str = "val") -> dict[str, float]:
        """Loss and metrics of ``module`` on ``data`` (no training)."""
        self.dist.setup(self.device)
        try:
            module.to(self.device)
            self.module = module
            return self._validate(self._eval_loader(module, data), prefix=prefix)
        finally:
            self.dist.teardown()

    def _eval_loader(self, module: TrainingModule, data: DataSource) -> Any:
        check_sizes(data, batch_size=1, world_size=1, drop_last=False, split="evaluation")
        return make_loader(data, module.data_pipeline(training=False),
                           batch_size=self.config.eval_batch_size or self.config.batch_size, shuffle=False,
                           seed=self.config.seed, drop_last=False, num_workers=self.config.num_workers,
                           dist=self.dist, pin_memory=self.device.type == "cuda")

    def request_stop(self, reason: str) -> None:
        """Ask the loop to stop after the current step (used by early stopping)."""
        self._stop_reason = reason

    def on_trainable_changed(self) -> None:
        """Call after changing ``requires_grad`` during training (gradual unfreezing): re-wraps DDP."""
        if self.dist.enabled:
            self._wrap_model()

    # ----------------------------------------------------------------- the loop
    def _train(self, train_loader: Any, val_loader: Any) -> dict[str, float]:
        cfg, state, module = self.config, self.state, self.module
        assert module is not None and self.optimizer is not None and self.scheduler is not None
        metrics: dict[str, float] = {}
        validated_at = -1
        loss_sum = torch.zeros((), device=self.device)
        self._truncated = torch.zeros((), dtype=torch.long, device=self.device)
        window_batches, window_samples, window_start = 0, 0, time.perf_counter()
        module.train()
        while state.global_step < self.max_steps and self._stop_reason is None:
            position_loader(train_loader, epoch=state.epoch, skip_batches=state.batches_in_epoch, seed=cfg.seed)
            for callback in self.callbacks:
                callback.on_train_epoch_start(self, state.epoch)
            micro = 0
            for batch in train_loader:
                batch = move_to_device(batch, self.device, non_blocking=True)
                micro += 1
                state.batches_in_epoch += 1
                last_micro = micro % cfg.grad_accum == 0
                for callback in self.callbacks:
                    callback.on_train_batch_start(self, state.global_step)
                sync = contextlib.nullcontext() if last_micro or not self.dist.enabled else self.model.no_sync()
                with sync:
                    with self.precision.autocast():
                        loss = self.model(batch).loss
                    if not torch.isfinite(loss):
                        self._nonfinite(loss)
                        continue
                    self.precision.backward(loss / cfg.grad_accum)
                loss_sum += loss.detach()
                if (truncated := truncated_in(batch)) is not None:
                    self._truncated += truncated.sum()  # no sync per step
                window_batches += 1
                window_samples += batch_size_of(batch) * self.dist.world_size
                if not last_micro:
                    continue
                self._optimizer_step()
                self.logger.advance()
                step_loss = None
                if state.global_step % cfg.log_every == 0 or state.global_step == self.max_steps:
                    elapsed = time.perf_counter() - window_start
                    step_loss = self.dist.mean(float(loss_sum) / max(1, window_batches), self.device)
                    self.logger.log({"step": state.global_step, "epoch": state.epoch, "train/loss": step_loss,
                                     "train/lr": self.scheduler.get_last_lr()[0],
                                     "train/samples_per_s": window_samples / max(elapsed, 1e-9)})
                    loss_sum.zero_()
                    window_batches, window_samples, window_start = 0, 0, time.perf_counter()
                for callback in self.callbacks:
                    callback.on_train_batch_end(self, state.global_step, step_loss if step_loss is not None
                                                else float("nan"))
                if val_loader is not None and cfg.eval_every and state.global_step % cfg.eval_every == 0:
                    metrics = self._validate_and_log(val_loader)
                    validated_at = state.global_step
                if cfg.checkpoint_every and state.global_step % cfg.checkpoint_every == 0:
                    self._save_checkpoint()
                if state.global_step >= self.max_steps or self._stop_reason is not None:
                    break
            else:  # epoch finished
                for callback in self.callbacks:
                    callback.on_train_epoch_end(self, state.epoch)
                state.epoch += 1
                state.batches_in_epoch = 0
                if val_loader is not None and not cfg.eval_every and state.global_step != validated_at:
                    metrics = self._validate_and_log(val_loader)
                    validated_at = state.global_step
                if not cfg.checkpoint_every:
                    self._save_checkpoint()
        if val_loader is not None and state.global_step != validated_at:
            metrics = self._validate_and_log(val_loader)
        self._save_checkpoint()
        return metrics

    def _optimizer_step(self) -> None:
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
        self.state.samples_seen += cfg.batch_size * cfg.grad_accum * self.dist.world_size

    def _nonfinite(self, loss: torch.Tensor) -> None:
        loss = loss.detach()
        state = self.state
        where = f"step {state.global_step + 1} (epoch {state.epoch}, batch {state.batches_in_epoch})"
        if not self.config.skip_nonfinite:
            raise TrainingError(
                f"loss is {float(loss)} at {where}. Lower trainer.lr, check the data of that batch, try "
                "precision=32, or set trainer.skip_nonfinite=true to skip such batches (they are counted)."
            )
        state.skipped_nonfinite += 1
        self.optimizer.zero_grad(set_to_none=True)
        self.logger.message(f"skipped a batch with loss {float(loss)} at {where} "
                            f"({state.skipped_nonfinite} skipped so far)")

    def _validate_and_log(self, loader: Any) -> dict[str, float]:
        metrics = self._validate(loader, prefix="val")
        self.logger.log({"step": self.state.global_step, "epoch": self.state.epoch, **metrics})
        for callback in self.callbacks:
            callback.on_validation_end(self, metrics)
        return metrics

    @torch.no_grad()
    def _validate(self, loader: Any, *, prefix: str) -> dict[str, float]:
        module = self.module
        assert module is not None
        for callback in self.callbacks:
            callback.on_validation_start(self)
        was_training = module.training
        module.eval()
        module.reset_metrics()
        sums = torch.zeros(3, dtype=torch.float64, device=self.device)  # loss × n, examples, truncated inputs
        measures_truncation = False
        position_loader(loader, epoch=0, skip_batches=0, seed=self.config.seed)
        for batch in loader:
            batch = move_to_device(batch, self.device, non_blocking=True)
            with self.precision.autocast():
                output = module(batch)
            n = batch_size_of(batch)
            sums[0] += output.loss.detach().double() * n
            sums[1] += n
            if (truncated := truncated_in(batch)) is not None:
                measures_truncation = True
                sums[2] += truncated.sum()
            module.update_metrics(batch, output)
        if self.dist.enabled:
            torch.distributed.all_reduce(sums)
        metrics = {f"{prefix}/loss": float(sums[0] / sums[1].clamp_min(1))}
        if measures_truncation:  # inputs cut at the model's length limit are counted, never silent
            metrics[f"{prefix}/truncated_examples"] = float(sums[2])
        metrics.update({f"{prefix}/{name}": value for name, value in module.compute_metrics().items()})
        module.train(was_training)
        return metrics

    # ----------------------------------------------------------------- pieces
    def _wrap_model(self) -> None:
        model: torch.nn.Module = self.module
        if self.dist.enabled:
            ids = [self.device.index] if self.device.type == "cuda" else None
            model = DistributedDataParallel(model, device_ids=ids)
        if self.config.compile:
            model = torch.compile(model)
        self.model = model

    def _build_callbacks(self) -> list[Callback]:
        callbacks = list(self.user_callbacks)
        for strategy in self.strategies:
            callbacks.extend(strategy.callbacks())
        cfg = self.config
        if cfg.early_stopping:
            callbacks.append(EarlyStopping(**cfg.early_stopping))
        if cfg.monitor:
            callbacks.append(BestCheckpoint(cfg.monitor, cfg.monitor_mode))
        return callbacks

    def _fold_counters(self) -> None:
        """Move counters kept on the device into the saved state (summed over ranks)."""
        if self._truncated is None:
            return
        total = self._truncated.clone()
        if self.dist.enabled:
            torch.distributed.all_reduce(total)
        self.state.truncated_examples += int(total)
        self._truncated.zero_()

    def _save_checkpoint(self) -> None:
        self._fold_counters()  # every rank takes part
        if self.run is None or not self.run.enabled:
            return
        ckpt.atomic_save(checkpoint_state(self), self.run.checkpoints / "last.pt")
        for callback in self.callbacks:
            if isinstance(callback, BestCheckpoint):
                callback.after_checkpoint(self)

    def _finish(self, metrics: dict[str, float]) -> None:
        if self.run is None or not self.run.enabled:
            return
        from polygraft.model_io import save_model
        from polygraft.plots import plot_curves

        save_model(self.module, self.run.model_dir)
        results = {k: v for k, v in metrics.items() if isinstance(v, int | float) and math.isfinite(v)}
        results.update({"train/steps": self.state.global_step, "train/skipped_nonfinite": self.state.skipped_nonfinite,
                        "train/truncated_examples": self.state.truncated_examples})
        if self.state.truncated_examples:
            self.logger.message(f"{self.state.truncated_examples} training examples were longer than the model's "
                                "limit and were truncated (raise max_length to keep them whole)")
        self.run.write_json("results.json", results)
        plot_curves(self.run.read_metrics(), self.run.path / "curves.png")
        save_artifacts = getattr(self.module, "save_artifacts", None)
        if save_artifacts is not None and metrics:
            save_artifacts(self.run.path)
        if self._stop_reason:
            self.logger.message(self._stop_reason)


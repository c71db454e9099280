"""Exponential moving average (EMA) of the weights, used for validation and for the saved model.

After each optimizer step the averaged copy moves towards the live weights with torch's
:func:`torch.optim.swa_utils.get_ema_multi_avg_fn` (``ema += (1 - decay) * (live - ema)``). As in
:class:`~torch.optim.swa_utils.AveragedModel`, the first update copies the live weights. Floating-point buffers
(batch-norm statistics) are averaged too; integer buffers keep their live values.
The EMA weights are swapped into the module for each validation (and swapped back afterwards), and ``finalize``
copies them into the module before it is saved.

Example:
    >>> from polygraft.finetune.ema import EMAStrategy
    >>> EMAStrategy(decay=0.99).callbacks()[0].decay
    0.99
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.optim.swa_utils import get_ema_multi_avg_fn

from polygraft.errors import ConfigError, TrainingError
from polygraft.interfaces.callback import Callback
from polygraft.interfaces.strategy import FinetuneStrategy

if TYPE_CHECKING:
    from polygraft.interfaces import TrainingModule


def _tracked(module: nn.Module) -> dict[str, torch.Tensor]:
    """Parameters and floating-point buffers by name (the tensors the EMA follows)."""
    tensors: dict[str, torch.Tensor] = {name: p for name, p in module.named_parameters()}
    tensors.update({name: b for name, b in module.named_buffers() if b.is_floating_point()})
    return tensors


def _like(source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``source`` as ``target`` holds it: gathered whole from shards (``trainer.distributed: fsdp`` averages
    sharded parameters; the saved model is whole), or cut into the target's shards (a checkpoint of one process
    resumed on several)."""
    sharded_source, sharded_target = hasattr(source, "device_mesh"), hasattr(target, "device_mesh")
    if sharded_source and not sharded_target:
        return source.full_tensor()  # type: ignore[attr-defined]  # a DTensor
    if sharded_target and not sharded_source:
        from torch.distributed.tensor import distribute_tensor

        return distribute_tensor(source.to(target.device), target.device_mesh,  # type: ignore[attr-defined]
                                 target.placements)  # type: ignore[attr-defined]
    return source


class EMACallback(Callback):
    """Keeps the averaged weights; updates after each optimizer step, swaps them in around validation."""

    def __init__(self, *, decay: float = 0.999, update_every: int = 1, warmup: bool = True) -> None:
        self.decay = decay
        self.update_every = update_every
        self.warmup = warmup
        self.averaged: dict[str, torch.Tensor] | None = None
        self.num_updates = 0
        self._backup: dict[str, torch.Tensor] | None = None
        self._pending: dict[str, Any] | None = None
        self.finalized = False  # set once the EMA weights were copied into the module for good

    # -- averaging -------------------------------------------------------------------------------------------
    def current_decay(self) -> float:
        """``decay``, or with ``warmup`` the smaller ``(1 + n) / (10 + n)`` over the first updates."""
        if not self.warmup:
            return self.decay
        return min(self.decay, (1 + self.num_updates) / (10 + self.num_updates))

    def start(self, module: nn.Module) -> None:
        """Allocate the averaged copy (restores a checkpointed one when ``load_state_dict`` came first)."""
        self.averaged = {name: t.detach().clone() for name, t in _tracked(module).items()}
        if self._pending is not None:
            self._restore(self._pending)
            self._pending = None

    @torch.no_grad()
    def update(self, module: nn.Module) -> None:
        """Move the averaged weights towards ``module``'s current weights."""
        if self.averaged is None:
            self.start(module)
        assert self.averaged is not None
        live = _tracked(module)
        if self.num_updates == 0:
            for name, tensor in live.items():
                self.averaged[name].copy_(tensor)
        else:
            groups: dict[tuple[torch.device, torch.dtype], tuple[list[torch.Tensor], list[torch.Tensor]]] = {}
            for name, tensor in live.items():
                ema = self.averaged[name]
                pair = groups.setdefault((ema.device, ema.dtype), ([], []))
                pair[0].append(ema)
                pair[1].append(tensor.detach().to(ema.device))
            average = get_ema_multi_avg_fn(self.current_decay())
            for emas, currents in groups.values():
                average(emas, currents, torch.tensor(self.num_updates))
        self.num_updates += 1

    @torch.no_grad()
    def copy_to(self, module: nn.Module) -> None:
        """Write the averaged weights into ``module`` (no-op before the first update)."""
        if self.averaged is None or self.num_updates == 0:
            return
        live = _tracked(module)
        if set(live) != set(self.averaged):
            missing = sorted(set(self.averaged) ^ set(live))[:5]
            raise TrainingError(
                f"ema: the module's parameters changed since averaging started (e.g. {missing}); finalize EMA "
                "before strategies that restructure the module (build_strategies orders them so)"
            )
        for name, tensor in live.items():
            tensor.copy_(_like(self.averaged[name], tensor))

    # -- trainer hooks ---------------------------------------------------------------------------------------
    def on_fit_start(self, trainer: Any) -> None:
        if self.averaged is None:
            self.start(trainer.module)

    def on_train_step_end(self, trainer: Any, step: int, loss: Any, batch: Any, output: Any) -> None:
        if step % self.update_every == 0:  # once per optimizer step, whatever the gradient accumulation
            self.update(trainer.module)

    @torch.no_grad()
    def on_validation_start(self, trainer: Any) -> None:
        if self.averaged is None or self.num_updates == 0 or self._backup is not None or self.finalized:
            return  # after finalize the module holds the EMA weights (and LoRA may have merged already)
        self._backup = {name: t.detach().clone() for name, t in _tracked(trainer.module).items()}
        self.copy_to(trainer.module)

    @torch.no_grad()
    def on_validation_end(self, trainer: Any, metrics: dict[str, float]) -> None:
        if self._backup is None:
            return
        for name, tensor in _tracked(trainer.module).items():
            tensor.copy_(self._backup[name])
        self._backup = None

    # -- resume ----------------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"num_updates": self.num_updates, "averaged": dict(self.averaged or {})}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.averaged is None and state.get("averaged"):
            self._pending = state  # applied when the averaged copy is allocated in on_fit_start
            self.num_updates = int(state["num_updates"])
            return
        self._restore(state)

    @torch.no_grad()
    def _restore(self, state: dict[str, Any]) -> None:
        self.num_updates = int(state["num_updates"])
        saved = state.get("averaged") or {}
        if self.averaged is not None and saved:
            if set(saved) != set(self.averaged):
                raise TrainingError("ema: the checkpoint's averaged weights do not match this module's parameters")
            for name, tensor in saved.items():
                self.averaged[name].copy_(_like(tensor, self.averaged[name]))


class EMAStrategy(FinetuneStrategy):
    """Keep an exponential moving average of the weights; validate and save with it.

    Options:
        decay: EMA decay per update (default 0.999; 0.99 for runs of a few hundred steps).
        update_every: update after every N optimizer steps (default 1).
        warmup: use ``min(decay, (1 + n) / (10 + n))`` for the n-th update so short runs are not dominated by
            the first weights (default true).

    ``order`` is 0: its ``finalize`` copies the EMA weights into the module before LoRA merges its adapters.
    """

    name = "ema"
    order = 0

    def __init__(self, *, decay: float = 0.999, update_every: int = 1, warmup: bool = True) -> None:
        if not 0 <= decay < 1:
            raise ConfigError(f"ema: decay must be in [0, 1), got {decay}")
        if int(update_every) < 1:
            raise ConfigError(f"ema: update_every must be ≥ 1, got {update_every}")
        self.callback = EMACallback(decay=decay, update_every=int(update_every), warmup=warmup)

    def callbacks(self) -> list[Callback]:
        return [self.callback]

    def finalize(self, module: TrainingModule) -> None:
        self.callback.copy_to(module)
        self.callback.finalized = True

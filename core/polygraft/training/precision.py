"""Devices and mixed precision: pick the device, autocast where it is supported, GradScaler for fp16.

Example:
    >>> from polygraft.training.precision import Precision, pick_device
    >>> Precision("32", pick_device("cpu")).scaler is None
    True
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator

import torch

from polygraft.errors import ConfigError


def pick_device(name: str = "auto", *, local_rank: int = 0) -> torch.device:
    """``auto`` prefers CUDA, then MPS, then CPU; ``cuda`` under torchrun means this rank's GPU."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", local_rank)
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError("trainer.device=cuda but no CUDA device is visible; use device=auto or cpu")
        if device.index is None:
            device = torch.device("cuda", local_rank)
        elif device.index >= torch.cuda.device_count():
            raise ConfigError(f"trainer.device={name} but this machine has {torch.cuda.device_count()} CUDA device(s)")
    if device.type == "mps" and not (getattr(torch.backends, "mps", None) is not None
                                     and torch.backends.mps.is_available()):
        raise ConfigError("trainer.device=mps but MPS (Apple silicon) is not available here; use device=auto or cpu")
    return device


class Precision:
    """Autocast context and (for fp16 on CUDA) a GradScaler."""

    def __init__(self, mode: str, device: torch.device) -> None:
        self.mode = mode
        self.device = device
        self.dtype: torch.dtype | None = {"bf16-mixed": torch.bfloat16, "fp16-mixed": torch.float16}.get(mode)
        if self.dtype is not None and device.type == "mps" and self.dtype is torch.bfloat16:
            warnings.warn("bf16 autocast is not supported on MPS; training in fp32", stacklevel=2)
            self.dtype = None
        self.scaler: torch.amp.GradScaler | None = None
        if self.dtype is torch.float16 and device.type == "cuda":
            self.scaler = torch.amp.GradScaler("cuda")

    @contextlib.contextmanager
    def autocast(self) -> Iterator[None]:
        if self.dtype is None:
            yield
            return
        with torch.autocast(device_type=self.device.type, dtype=self.dtype):
            yield

    def backward(self, loss: torch.Tensor) -> None:
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
        else:
            loss.backward()

    def unscale(self, optimizer: torch.optim.Optimizer) -> None:
        if self.scaler is not None:
            self.scaler.unscale_(optimizer)

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        if self.scaler is not None:
            self.scaler.step(optimizer)
            self.scaler.update()
        else:
            optimizer.step()

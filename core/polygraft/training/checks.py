"""Checks the trainer makes on the way, so that a plugin's mistake is named instead of ending in a torch traceback.

:func:`check_first_features` watches the backbone's first forward and compares its features with what the backbone
declares (``feature_dim``, ``map_channels``, the batch size): a wrong shape otherwise fails inside a head, or
trains silently (a transposed sequence read by a pooled head).

Example:
    >>> import torch, polygraft
    >>> from polygraft.training.checks import check_first_features
    >>> backbone = polygraft.create_backbone("toy", in_features=2, hidden=4)
    >>> check_first_features(backbone)
    >>> backbone({"x": torch.zeros(3, 2)}).pooled.shape
    torch.Size([3, 4])
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from polygraft.errors import IncompatibleComponentsError, TrainingError
from polygraft.features import Features, batch_size_of


def check_first_features(backbone: Any) -> None:
    """Check the features of ``backbone``'s next forward against its declaration (once; the hook removes itself)."""
    handle: Any = None
    name = backbone.spec_name or type(backbone).__name__

    def check(_module: Any, args: tuple[Any, ...], features: Any) -> None:
        handle.remove()
        if not isinstance(features, Features):
            raise IncompatibleComponentsError(f"backbone {name!r} returned {type(features).__name__}, not "
                                              "polygraft.features.Features")
        problems = backbone.feature_problems(features, batch_size_of(args[0]))
        if problems:
            raise IncompatibleComponentsError(
                f"backbone {name!r}: {problems[0]} (found on the first batch; polygraft.testing.check_backbone "
                "checks every rule a backbone must follow)")

    handle = backbone.register_forward_hook(check)


@contextlib.contextmanager
def out_of_memory_named(step: int, batch_size: int) -> Iterator[None]:
    """Memory exhausted in a training step (CPU or GPU) → a TrainingError naming the step, the batch and the knobs."""
    import torch

    try:
        yield
    except (MemoryError, torch.OutOfMemoryError) as exc:
        raise TrainingError(_oom(step, batch_size, exc)) from None
    except RuntimeError as exc:  # the CPU allocator's "can't allocate memory" is a plain RuntimeError
        if "allocate" not in str(exc) or "memory" not in str(exc):
            raise
        raise TrainingError(_oom(step, batch_size, exc)) from None


def _oom(step: int, batch_size: int, exc: BaseException) -> str:
    first = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
    return (f"out of memory at step {step} (a batch of {batch_size} examples: {first}); lower trainer.batch_size "
            "(with trainer.grad_accum to keep the effective batch), or the inputs' size (max_length, image_size, "
            "max_duration)")


def nonfinite_line(trainer: Any, loss: Any) -> str:
    """A non-finite loss: a TrainingError saying what to try, or (``trainer.skip_nonfinite``) the line that
    reports the skipped batch (the caller counts it and drops the step)."""
    state, value = trainer.state, float(loss.detach())
    where = f"step {state.global_step + 1} (epoch {state.epoch}, batch {state.batches_in_epoch})"
    if not trainer.config.skip_nonfinite:
        cached = trainer.loaders.cached_on_disk("train") if trainer.loaders is not None else None
        data = (f"check the data of that batch: it came from the input cache at {cached} (rule the cache out "
                "with trainer.cache=off, or delete that folder)" if cached else "check the data of that batch")
        raise TrainingError(f"loss is {value} at {where}. Lower trainer.lr, {data}, try precision=32, or set "
                            "trainer.skip_nonfinite=true to skip such batches (they are counted).")
    return f"skipped a batch with loss {value} at {where} ({state.skipped_nonfinite + 1} skipped so far)"

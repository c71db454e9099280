"""What a fit writes into its run directory, written so that a full disk never costs more than the file at hand.

Checkpoints (``checkpoints/last.pt``) and the model (``model/``) are written to a temporary sibling and renamed into
place, so a failed write leaves the previous file whole; the temporary file is removed on every failure path (and a
killed process's is removed at the next start: ``RunDirectory.remove_stale_temporaries``). A write that fails for
lack of space is a :class:`~polygraft.errors.TrainingError` naming the path, the free space, and what is still safe.

Example:
    >>> from polygraft.training.outputs import is_disk_full
    >>> import errno
    >>> is_disk_full(OSError(errno.ENOSPC, "No space left on device")), is_disk_full(ValueError("x"))
    (True, False)
"""

from __future__ import annotations

import contextlib
import errno
import math
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from polygraft.errors import TrainingError

if TYPE_CHECKING:
    from polygraft.training.trainer import Trainer

FULL = (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))


def is_disk_full(exc: BaseException) -> bool:
    """True when ``exc`` (or what caused it: torch and safetensors wrap the OS error) says the disk is full."""
    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None:
            return False
        if isinstance(seen, OSError) and seen.errno in FULL:
            return True
        text = str(seen)
        if "No space left on device" in text or "os error 28" in text or "Disk quota exceeded" in text:
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def free_space(path: Path) -> str:
    """The free space where ``path`` lives, for messages (``"12.3 MB free"``)."""
    folder = path if path.is_dir() else path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        return f"{shutil.disk_usage(folder).free / 2**20:,.1f} MB free"
    except OSError:
        return "free space unknown"


@contextlib.contextmanager
def guarded(path: Path, *, safe: str) -> Iterator[None]:
    """Turn a full disk while writing ``path`` into a TrainingError saying ``safe`` (what is still intact)."""
    try:
        yield
    except Exception as exc:
        if is_disk_full(exc):
            raise TrainingError(f"{path}: no space left on device ({free_space(path)}); {safe}") from None
        raise


def write_checkpoint(trainer: Trainer) -> Path:
    """``checkpoints/last.pt`` of the trainer's current state (atomically); ``checkpoints/last.dcp/`` for an fsdp
    run, which every rank writes its shards into."""
    from polygraft.training import checkpoint as ckpt
    from polygraft.training import dcp
    from polygraft.training.resume import checkpoint_state

    sharded = trainer.config.distributed == "fsdp"
    path = dcp.checkpoint_folder(trainer.run.last_checkpoint) if sharded else trainer.run.last_checkpoint
    previous = (f"the previous checkpoint ({path.name}, step {trainer._checkpointed_at}) is intact"
                if path.exists() else "no checkpoint was written")
    with guarded(path, safe=f"{previous}; free some space and run again (with resume=last if a checkpoint exists)"):
        if sharded:
            dcp.save(trainer, dcp.state_of(trainer), path)
        else:
            ckpt.atomic_save(checkpoint_state(trainer), path)
    return path


def write_model(trainer: Trainer) -> Path:
    """``model/`` (weights and description), written into a temporary folder and renamed into place."""
    from polygraft.model_io import save_model

    target = trainer.run.model_dir
    staging = target.with_name(f".model.tmp-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    checkpoint = trainer.run.last_checkpoint
    safe = (f"the training is safe in {checkpoint} (step {trainer.state.global_step}): free some space and run the "
            "same command with resume=last" if checkpoint.exists() else "free some space and train again")
    try:
        with guarded(target, safe=safe):
            save_model(trainer.module, staging)
            if target.exists():
                shutil.rmtree(target)
            os.replace(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    trainer.run.finish()  # the folder's model is this run's: a failing test split later keeps it usable
    return target


def write_results(trainer: Trainer, metrics: dict[str, float], skipped: dict[str, Any]) -> None:
    """``results.json``, the curves and the task's plots."""
    from polygraft.plots import plot_curves

    run = trainer.run
    results: dict[str, Any] = {k: v for k, v in metrics.items() if isinstance(v, int | float) and math.isfinite(v)}
    results.update({"train/steps": trainer.state.global_step,
                    "train/skipped_nonfinite": trainer.state.skipped_nonfinite, **trainer.results, "skipped": skipped})
    with guarded(run.results_file, safe=f"the model is saved in {run.model_dir}"):
        run.write_results(results)
        plot_curves(run.read_metrics(), run.plot("curves"))
        if metrics:
            trainer.module.save_artifacts(run)
    for callback in trainer.callbacks:
        callback.on_results_saved(trainer, results)

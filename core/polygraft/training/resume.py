"""Resume: what a checkpoint holds and how a trainer is put back exactly where it stopped.

A checkpoint has the module, optimizer, scheduler and scaler states, every RNG state, the trainer's counters
(including the position in the epoch), each callback's state and a fingerprint of the recipe, so resuming
into a different recipe is refused instead of silently mixing two runs.

Example:
    >>> from polygraft.training.resume import fingerprint
    >>> fingerprint({"trainer": {"lr": 1.0, "max_steps": 5}}) == fingerprint({"trainer": {"lr": 1.0, "max_steps": 9}})
    True
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from polygraft.errors import TrainingError
from polygraft.fingerprint import digest
from polygraft.paths import file_problem
from polygraft.training import checkpoint as ckpt

if TYPE_CHECKING:
    from polygraft.interfaces import Callback
    from polygraft.training.trainer import Trainer

# settings that may change between a run and its resume (how long, how it is shown, where it runs)
UNFINGERPRINTED = {"resume", "output_dir", "max_steps", "max_epochs", "progress", "num_workers", "log_every",
                   "tensorboard", "device", "eval_every", "checkpoint_every", "overwrite"}


def fingerprint(config: Mapping[str, Any]) -> str:
    """Hash of the settings that must match for a resume to continue the same run."""

    def strip(value: Any) -> Any:
        if isinstance(value, Mapping):
            return {k: strip(v) for k, v in value.items() if k not in UNFINGERPRINTED}
        return value

    return digest(strip(config))[:16]


def callback_states(callbacks: Sequence[Callback]) -> dict[str, Any]:
    """Each callback's ``state_dict`` under its ``checkpoint_key()``; two callbacks may not share a key."""
    states: dict[str, Any] = {}
    for callback in callbacks:
        key = callback.checkpoint_key()
        if key in states:
            raise TrainingError(f"two callbacks save their state under {key!r}; give one of them its own state_key "
                                "(class attribute or property) so a resumed run restores each")
        states[key] = callback.state_dict()
    return states


def checkpoint_state(trainer: Trainer) -> dict[str, Any]:
    """Everything a resume needs, in types ``torch.load(weights_only=True)`` accepts."""
    return {
        "module": trainer.module.state_dict(),
        "optimizer": trainer.optimizer.state_dict(),
        "scheduler": trainer.scheduler.state_dict(),
        "scaler": trainer.precision.scaler.state_dict() if trainer.precision.scaler else None,
        "rng": ckpt.rng_state(),
        "trainer": asdict(trainer.state),
        "callbacks": callback_states(trainer.callbacks),
        "fingerprint": fingerprint(trainer.run_config),
    }


def restore(trainer: Trainer, resume: str | Path) -> None:
    """Load ``resume`` (a checkpoint path, or ``last`` in the run directory) into a set-up trainer."""
    path = Path(resume)
    if str(resume) == "last":
        if trainer.run is None:
            raise TrainingError("resume=last needs an output_dir (the run directory to resume)")
        path = trainer.run.last_checkpoint
    problem = file_problem(path)
    if problem is not None:
        shown = str(path) if len(str(path)) < 200 else f"{str(path)[:80]}..."
        raise TrainingError(f"cannot resume: {shown} {problem} (start without resume, or check output_dir)")
    state = ckpt.load_checkpoint(path)
    expected = fingerprint(trainer.run_config)
    if state["fingerprint"] != expected:
        raise TrainingError(
            f"cannot resume from {path}: it was made by a different recipe (fingerprint {state['fingerprint']} "
            f"!= {expected}). Use a new output_dir, or the recipe saved in that run's config.yaml."
        )
    trainer.module.load_state_dict(state["module"])
    trainer.optimizer.load_state_dict(state["optimizer"])
    trainer.scheduler.load_state_dict(state["scheduler"])
    if trainer.precision.scaler is not None and state["scaler"] is not None:
        trainer.precision.scaler.load_state_dict(state["scaler"])
    known = {f.name for f in fields(trainer.state)}
    trainer.state = type(trainer.state)(**{k: v for k, v in state["trainer"].items() if k in known})
    saved = state["callbacks"]
    by_class = isinstance(saved, list)  # written by polygraft 0.1: [class name, state] pairs
    if by_class:
        saved = {name: entry for name, entry in reversed(saved)}
    for callback in trainer.callbacks:  # matched by state key; a callback new to this run starts fresh
        key = type(callback).__qualname__ if by_class else callback.checkpoint_key()
        if key in saved:
            callback.load_state_dict(saved[key])
    ckpt.set_rng_state(state["rng"])
    if trainer.run is not None:
        trainer.run.truncate_metrics(trainer.state.global_step)

"""Resume: what a checkpoint holds and how a trainer is put back exactly where it stopped.

A checkpoint has the module, optimizer, scheduler and scaler states, every RNG state, the trainer's counters
(including the position in the epoch), each callback's state and a fingerprint of the recipe, so resuming
into a different recipe is refused instead of silently mixing two runs. ``trainer.distributed: fsdp`` runs keep
the same in a Distributed Checkpoint folder (:mod:`polygraft.training.dcp`).

A checkpoint also records its layout (ranks, ``batch_size``, ``grad_accum``). A resume may change the layout as
long as the global batch (``batch_size × grad_accum × ranks``) stays the same: the epoch's order is one permutation
of the examples (seeded by ``seed + epoch``) whatever the number of ranks, rank ``r`` of ``W`` reading its
positions ``r, r + W, ...``, so the resumed run goes on at the same global position (the examples already read
this epoch). With a training set that divides into whole global batches every later step then sees the very
examples it would have seen; otherwise the padding DistributedSampler adds to even out the ranks differs at the
end of each epoch.

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
                   "device", "eval_every", "checkpoint_every", "overwrite", "distributed",
                   "batch_size", "grad_accum"}  # the global batch they make is checked instead (check_layout)


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


def layout(trainer: Trainer) -> dict[str, int]:
    """How the run is laid out: ranks, per-rank batch size and accumulation (their product must survive a resume)."""
    return {"world_size": trainer.dist.world_size, "batch_size": trainer.config.batch_size,
            "grad_accum": trainer.config.grad_accum}


def checkpoint_state(trainer: Trainer) -> dict[str, Any]:
    """Everything a resume needs, in types ``torch.load(weights_only=True)`` accepts."""
    return {
        "module": trainer.module.state_dict(),
        "optimizer": trainer.optimizer.state_dict(),
        **plain_state(trainer),
        "callbacks": callback_states(trainer.callbacks),
    }


def plain_state(trainer: Trainer) -> dict[str, Any]:
    """The parts of a checkpoint that are neither weights nor optimizer states nor callbacks."""
    return {
        "scheduler": trainer.scheduler.state_dict(),
        "scaler": trainer.precision.scaler.state_dict() if trainer.precision.scaler else None,
        "rng": ckpt.rng_state(),
        "trainer": asdict(trainer.state),
        "fingerprint": fingerprint(trainer.run_config),
        "layout": layout(trainer),
    }


def restore(trainer: Trainer, resume: str | Path) -> list[str]:
    """Load ``resume`` (a checkpoint path, or ``last`` in the run directory) into a set-up trainer. Returns the
    lines the run log should show (a checkpoint moved to another number of processes)."""
    from polygraft.training import dcp

    sharded = trainer.config.distributed == "fsdp"
    path = Path(resume)
    if str(resume) == "last":
        if trainer.run is None:
            raise TrainingError("resume=last needs an output_dir (the run directory to resume)")
        path = dcp.checkpoint_folder(trainer.run.last_checkpoint) if sharded else trainer.run.last_checkpoint
    problem = file_problem(path) if not path.is_dir() else None
    if problem is not None:
        shown = str(path) if len(str(path)) < 200 else f"{str(path)[:80]}..."
        other = " (an fsdp run's checkpoint is checkpoints/last.dcp: resume with trainer.distributed=fsdp)" if (
            not sharded and dcp.is_dcp(dcp.checkpoint_folder(path))) else ""
        raise TrainingError(f"cannot resume: {shown} {problem}{other} (start without resume, or check output_dir)")
    if sharded:
        state = dcp.restore(trainer, path, check=lambda plain: check_recipe(trainer, plain, path))
    else:
        state = ckpt.load_checkpoint(path)
        check_recipe(trainer, state, path)
        trainer.module.load_state_dict(state["module"])
        trainer.optimizer.load_state_dict(state["optimizer"])
    trainer.scheduler.load_state_dict(state["scheduler"])
    if trainer.precision.scaler is not None and state["scaler"] is not None:
        trainer.precision.scaler.load_state_dict(state["scaler"])
    known = {f.name for f in fields(trainer.state)}
    trainer.state = type(trainer.state)(**{k: v for k, v in state["trainer"].items() if k in known})
    moved = check_layout(trainer, state.get("layout"), path)
    load_callback_states(trainer.callbacks, state["callbacks"])
    ckpt.set_rng_state(state["rng"])
    if trainer.run is not None:
        trainer.run.truncate_metrics(trainer.state.global_step)
    return [moved] if moved else []


def check_recipe(trainer: Trainer, state: Mapping[str, Any], path: Path) -> None:
    """Refuse a checkpoint of another recipe."""
    expected = fingerprint(trainer.run_config)
    if state["fingerprint"] != expected:
        raise TrainingError(
            f"cannot resume from {path}: it was made by a different recipe (fingerprint {state['fingerprint']} "
            f"!= {expected}). Use a new output_dir, or the recipe saved in that run's config.yaml."
        )


def check_layout(trainer: Trainer, saved: Mapping[str, int] | None, path: Path) -> str | None:
    """Refuse another global batch; move the epoch position to this run's ranks. Returns the line to log."""
    now = layout(trainer)
    saved = dict(saved) if saved else now  # written before layouts were recorded: the same layout
    before, after = (s["batch_size"] * s["grad_accum"] * s["world_size"] for s in (saved, now))
    if before != after:
        raise TrainingError(
            f"cannot resume from {path}: it trained with a global batch of {before} (batch_size {saved['batch_size']} "
            f"× grad_accum {saved['grad_accum']} × {saved['world_size']} processes), this run's is {after}; keep "
            "batch_size × grad_accum × processes the same (or start a new run)")
    if saved == now:
        return None
    read = trainer.state.batches_in_epoch * saved["batch_size"] * saved["world_size"]  # examples this epoch
    trainer.state.batches_in_epoch = read // (now["batch_size"] * now["world_size"])
    return (f"resumed a checkpoint of {saved['world_size']} process(es) on {now['world_size']}: the epoch goes on "
            f"after the {read:,} examples already read")


def load_callback_states(callbacks: Sequence[Callback], saved: Any) -> None:
    """Each callback's state, matched by state key (a callback new to this run starts fresh)."""
    by_class = isinstance(saved, list)  # written by polygraft 0.1: [class name, state] pairs
    if by_class:
        saved = {name: entry for name, entry in reversed(saved)}
    for callback in callbacks:
        key = type(callback).__qualname__ if by_class else callback.checkpoint_key()
        if key in saved:
            callback.load_state_dict(saved[key])

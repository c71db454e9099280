"""Checkpoints of ``trainer.distributed: fsdp`` runs: Distributed Checkpoint (``torch.distributed.checkpoint``).

``checkpoints/last.dcp/`` is one DCP folder that every rank writes its shards into (``.metadata`` plus one
``.distcp`` file per rank). It holds what ``last.pt`` holds (module, optimizer, scheduler, RNG, the trainer's
counters, callbacks' states, the recipe's fingerprint) and the layout it was written with (ranks, batch size,
gradient accumulation). The module and optimizer states are keyed by parameter name
(``torch.distributed.checkpoint.state_dict.get_state_dict``), so a run with another number of ranks reads it:
DCP reshards every tensor on load. A single process (no torchrun) with ``distributed: fsdp`` trains unsharded and
writes and reads the same format, so a checkpoint of two ranks resumes on one and the other way round.

The folder is written next to the old one (``.last.dcp.tmp``) and renamed into place by rank 0 once every rank
has written, so a failed write leaves the previous checkpoint whole. Non-tensor values are read back with
``torch.load(weights_only=True)`` (:class:`SafeLoadPlanner`): nothing but tensors and plain data is unpickled.

Example:
    >>> from polygraft.training.dcp import checkpoint_folder
    >>> from pathlib import Path
    >>> checkpoint_folder(Path("runs/x/checkpoints/last.pt")).name
    'last.dcp'
"""

from __future__ import annotations

import contextlib
import io
import shutil
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from polygraft.errors import TrainingError

if TYPE_CHECKING:
    from polygraft.training.trainer import Trainer


def checkpoint_folder(last_pt: Path) -> Path:
    """The DCP folder beside ``checkpoints/last.pt``."""
    return last_pt.with_suffix(".dcp")


def is_dcp(path: Path) -> bool:
    """A DCP checkpoint folder (it holds ``.metadata``)."""
    return path.is_dir() and (path / ".metadata").is_file()


def _planner() -> Any:
    from torch.distributed.checkpoint import DefaultLoadPlanner

    class SafeLoadPlanner(DefaultLoadPlanner):
        """DCP's default load planner, but non-tensor values are read with ``weights_only=True``."""

        def load_bytes(self, read_item: Any, value: io.BytesIO) -> None:
            from torch.distributed.checkpoint._traverse import set_element  # what DefaultLoadPlanner uses

            loaded = torch.load(value, weights_only=True)
            if self.flatten_state_dict:
                set_element(self.original_state_dict, self.mappings[read_item.dest_index.fqn], loaded)
            else:
                self.state_dict[read_item.dest_index.fqn] = loaded

    return SafeLoadPlanner()


def _single(trainer: Trainer) -> bool:
    return not (torch.distributed.is_available() and torch.distributed.is_initialized())


def save(trainer: Trainer, state: dict[str, Any], folder: Path) -> None:
    """Every rank writes its part of ``state`` into ``folder`` (atomically replaced by rank 0)."""
    import torch.distributed.checkpoint as dcp

    staging = folder.with_name(f".{folder.name}.tmp")
    single = _single(trainer)
    if trainer.dist.is_main:
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
    _barrier(single)
    with _quiet():
        dcp.save(state, storage_writer=dcp.FileSystemWriter(str(staging)), no_dist=single)
    if trainer.dist.is_main:
        old = folder.with_name(f".{folder.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        if folder.exists():
            folder.rename(old)
        staging.rename(folder)
        shutil.rmtree(old, ignore_errors=True)
    _barrier(single)


def load(trainer: Trainer, state: dict[str, Any], folder: Path) -> None:
    """Read ``folder`` into ``state`` in place (every rank; tensors resharded to this run's layout)."""
    import torch.distributed.checkpoint as dcp

    if not is_dcp(folder):
        raise TrainingError(f"cannot resume: {folder} is not a distributed checkpoint (no .metadata); an fsdp run "
                            "resumes from checkpoints/last.dcp, a ddp run from checkpoints/last.pt")
    try:
        with _quiet():
            dcp.load(state, storage_reader=dcp.FileSystemReader(str(folder)), planner=_planner(),
                     no_dist=_single(trainer))
    except Exception as exc:  # a damaged folder, or one written by another model
        first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        raise TrainingError(f"cannot resume from {folder}: {first}. Resume from another checkpoint, or start "
                            "without resume") from None


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """DCP warns that one process is one process, and about its own use of TypedStorage."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*single process.*")
        warnings.filterwarnings("ignore", message="TypedStorage is deprecated")
        yield


def _barrier(single: bool) -> None:
    if not single:
        torch.distributed.barrier()


SEPARATOR = "|"
"""Joins the path of a callback's sharded tensor into one DCP key (parameter names hold dots, never ``|``)."""
SHARDED = "<in the distributed checkpoint>"
"""Stands in the pickled part of a checkpoint for a callback's sharded tensor, which DCP holds."""


def state_of(trainer: Trainer) -> dict[str, Any]:
    """What every rank gives DCP: module and optimizer states keyed by parameter name, callbacks' sharded tensors
    under ``callbacks|KEY|PATH``, and everything else pickled (``plain``, the same on every rank)."""
    from torch.distributed.checkpoint.state_dict import get_state_dict

    from polygraft.training.resume import callback_states, plain_state

    module, optimizer = get_state_dict(trainer.module, trainer.optimizer)
    sharded: dict[str, Any] = {}
    callbacks = _split(callback_states(trainer.callbacks), ("callbacks",), sharded)
    buffer = io.BytesIO()
    torch.save({**plain_state(trainer), "callbacks": callbacks}, buffer)
    return {"module": module, "optimizer": optimizer, "plain": buffer.getvalue(), **sharded}


def restore(trainer: Trainer, folder: Path, *, check: Any) -> dict[str, Any]:
    """Load ``folder`` into the trainer's module and optimizer; returns the plain part (``check`` sees it first,
    before any weight is read) with the callbacks' states whole again."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

    head: dict[str, Any] = {"plain": b""}
    load(trainer, head, folder)
    plain = torch.load(io.BytesIO(head["plain"]), weights_only=True)
    check(plain)
    module, optimizer = get_state_dict(trainer.module, trainer.optimizer)
    stored = dcp.FileSystemReader(str(folder)).read_metadata().state_dict_metadata
    params = dict(trainer.module.named_parameters())
    targets = {key: _target(key, meta, params) for key, meta in stored.items() if key.startswith("callbacks" + SEPARATOR)}
    load(trainer, {"module": module, "optimizer": optimizer, **targets}, folder)
    set_state_dict(trainer.module, trainer.optimizer, model_state_dict=module, optim_state_dict=optimizer)
    for key, tensor in targets.items():
        _put(plain, key.split(SEPARATOR), tensor)
    return dict(plain)


def _split(value: Any, path: tuple[str, ...], sharded: dict[str, Any]) -> Any:
    """``value`` with every sharded tensor (a DTensor) moved into ``sharded`` under its path."""
    if isinstance(value, dict):
        return {key: _split(item, (*path, str(key)), sharded) for key, item in value.items()}
    if hasattr(value, "device_mesh"):
        sharded[SEPARATOR.join(path)] = value
        return SHARDED
    return value


def _target(key: str, meta: Any, params: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """Where DCP loads a callback's tensor: sharded like the parameter it is named after, else a full tensor."""
    param = params.get(key.rsplit(SEPARATOR, 1)[-1])
    if param is not None and hasattr(param, "device_mesh") and tuple(param.shape) == tuple(meta.size):
        return torch.empty_like(param.detach())
    return torch.empty(tuple(meta.size), dtype=meta.properties.dtype)


def _put(plain: dict[str, Any], path: list[str], tensor: torch.Tensor) -> None:
    node = plain
    for part in path[:-1]:
        node = node.setdefault(part, {})
    node[path[-1]] = tensor

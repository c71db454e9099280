"""FSDP2 (``trainer.distributed: fsdp``): parameters, gradients and optimizer states sharded across the ranks.

Under torchrun with ``trainer.distributed: fsdp`` the trainer trains a sharded copy of the module
(:class:`ShardedModule`): each of the backbone's blocks (``Backbone.shard_units()``: the transformer layers, timm
stages or wav2vec2 layers its layer groups name) becomes one ``torch.distributed.fsdp.fully_shard`` unit, and the
whole module the root unit (the head, the embeddings and whatever no block holds). Each rank keeps ``1/W`` of every
parameter and of its optimizer states; a unit's parameters are all-gathered for its forward and backward only,
and its gradients reduce-scattered. A backbone that names no blocks is wrapped as one unit, with a warning (the
states are still sharded at rest, but the whole model is gathered for each forward).

What stays as under DDP:

* the module you passed is the one that holds the trained weights after ``fit``: its parameters are emptied while
  the sharded copy trains, and every rank gathers the full weights back into it at the end of training (before the
  strategies' ``finalize``, the saved model and the test split);
* strategies work on the sharded copy: frozen parameters (linear-probe, gradual-unfreeze: FSDP2 reads
  ``requires_grad`` at every all-gather), LoRA adapters (injected before sharding), EMA (its averages are sharded
  like the parameters), layer-wise learning rates (optimizer groups are mapped by parameter name);
* gradient clipping sees the global norm (``clip_grad_norm_`` reduces the sharded gradients' norms), and gradient
  accumulation reduce-scatters once per optimizer step (``set_requires_gradient_sync``);
* ``trainer.precision``: ``bf16-mixed`` / ``fp16-mixed`` gather parameters in that type and reduce gradients in
  float32 (``MixedPrecisionPolicy``), with autocast as without FSDP; ``32`` leaves everything in float32.

Checkpoints of an fsdp run are Distributed Checkpoints (:mod:`polygraft.training.dcp`), which a run with another
number of ranks reads.

Example:
    >>> import torch
    >>> from polygraft.training.fsdp import held_bytes
    >>> layer = torch.nn.Linear(4, 2)
    >>> held_bytes(layer, None)
    40
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn

from polygraft.errors import TrainingError
from polygraft.interfaces import TrainingModule

DISTRIBUTED = ("ddp", "fsdp")
"""The values of ``trainer.distributed``."""


def mixed_precision_policy(dtype: torch.dtype | None) -> Any:
    """FSDP2's policy for an autocast type (``None``: float32 throughout)."""
    from torch.distributed.fsdp import MixedPrecisionPolicy

    if dtype is None:
        return MixedPrecisionPolicy()
    return MixedPrecisionPolicy(param_dtype=dtype, reduce_dtype=torch.float32)


class ShardedModule:
    """A sharded copy of ``original`` that trains; :meth:`gather` puts the trained weights back into ``original``.

    ``lines`` holds what the run log should say (the units, or why there are none).
    """

    def __init__(self, original: TrainingModule, *, device: torch.device, world_size: int,
                 dtype: torch.dtype | None = None) -> None:
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import fully_shard

        _register_step_output()
        self.original = original
        self.lines: list[str] = []
        names = {id(m): name for name, m in original.named_modules()}
        blocks = _blocks(original)
        self.module: TrainingModule = copy.deepcopy(original)  # full weights twice, only until the original is emptied below
        mesh = init_device_mesh(device.type, (world_size,))
        policy = mixed_precision_policy(dtype)
        units = [self.module.get_submodule(names[id(block)]) for block in blocks if id(block) in names]
        for unit in units:
            fully_shard(unit, mesh=mesh, mp_policy=policy)
        fully_shard(self.module, mesh=mesh, mp_policy=policy)
        if units:
            self.lines.append(f"fsdp: {len(units)} blocks and the rest of the model sharded over {world_size} ranks")
        else:
            backbone = getattr(original, "backbone", original)
            name = getattr(backbone, "spec_name", "") or type(backbone).__name__
            self.lines.append(
                f"warning: fsdp: backbone {name!r} names no blocks (Backbone.shard_units), so the whole model is one "
                "FSDP unit: states are sharded at rest but every forward gathers all of it. Give the backbone "
                "layer_groups() of its blocks (or shard_units()) to shard block by block")
        self.units = len(units)
        for param in original.parameters():  # the copy holds the weights now; free the original's
            param.data = torch.empty(0, dtype=param.dtype, device=param.device)

    def map_groups(self, groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Optimizer groups of the original's parameters → the same groups of the sharded copy's."""
        names = {id(p): name for name, p in self.original.named_parameters()}
        sharded = dict(self.module.named_parameters())
        return [{**group, "params": [sharded[names[id(p)]] for p in group["params"]]} for group in groups]

    def sync_gradients(self, sync: bool) -> None:
        """Reduce-scatter gradients after this backward (the last micro-batch of a step) or keep accumulating."""
        self.module.set_requires_gradient_sync(sync)  # type: ignore[operator]  # an FSDPModule method

    def reshard(self) -> None:
        """Free gathered parameters (a forward without backward, such as evaluation, leaves the root unit's)."""
        self.module.reshard()  # type: ignore[operator]  # an FSDPModule method

    def gather(self) -> TrainingModule:
        """Every rank: the full trained weights (and buffers) back into the original module, which is returned."""
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        full = get_model_state_dict(self.module, options=StateDictOptions(full_state_dict=True))
        trained = dict(self.module.named_parameters())
        with torch.no_grad():
            for name, param in self.original.named_parameters():
                param.data = full[name].detach().to(param.device).clone()
                param.requires_grad_(trained[name].requires_grad)
            buffers = dict(self.module.named_buffers())
            for name, buffer in self.original.named_buffers():
                buffer.copy_(buffers[name])
        return self.original


def _register_step_output() -> None:
    """Let FSDP see the loss inside a ``StepOutput``: it hooks the tensors of each unit's output to finish the
    backward pass (reduce-scatter, reshard), and the root unit (the task) returns a StepOutput. Without this a run
    whose backbone is frozen (gradual unfreezing's first steps) would never reduce the head's gradients."""
    from torch.utils import _pytree as pytree

    from polygraft.interfaces import StepOutput

    if StepOutput not in pytree.SUPPORTED_NODES:
        pytree.register_pytree_node(StepOutput, lambda out: ([out.loss, out.outputs], None),
                                    lambda children, _: StepOutput(*children),
                                    serialized_type_name="polygraft.StepOutput")


def _blocks(module: nn.Module) -> list[nn.Module]:
    """The blocks the module's backbone names (none for a module without a backbone)."""
    backbone = getattr(module, "backbone", None)
    if backbone is None or not hasattr(backbone, "shard_units"):
        return []
    return list(backbone.shard_units())


def held_bytes(module: nn.Module, optimizer: torch.optim.Optimizer | None) -> int:
    """Bytes of parameters and optimizer states this process holds (a sharded tensor counts its local shard;
    storages shared by several tensors count once)."""
    seen: set[int] = set()
    total = 0

    def count(tensor: torch.Tensor) -> None:
        nonlocal total
        local = tensor.to_local() if hasattr(tensor, "to_local") else tensor
        storage = local.untyped_storage()
        if storage.data_ptr() in seen or storage.nbytes() == 0:
            return
        seen.add(storage.data_ptr())
        total += storage.nbytes()

    for param in module.parameters():
        count(param.detach())
    if optimizer is not None:
        for state in optimizer.state.values():
            for value in state.values():
                if isinstance(value, torch.Tensor) and value.dim() > 0:
                    count(value)
    return total


def in_lockstep(batches: Iterator[Any], any_rank: Callable[[bool], bool], *,
                split: str) -> Iterator[tuple[Any, bool]]:
    """``(batch, real)`` until every rank's ``batches`` ran out: a rank that ran out first repeats its last batch
    with ``real=False`` (its output is not counted), since every forward of a sharded model is a collective that
    all ranks must join."""
    last: Any = None
    for batch in _with_end(batches):
        if not any_rank(batch is not None):
            return
        if batch is None:
            if last is None:
                raise TrainingError(f"fsdp: the {split} split gives this process no batch; every rank needs at least "
                                    "one example (use fewer ranks, or a larger split)")
            yield last, False
        else:
            last = batch
            yield batch, True


def _with_end(batches: Iterator[Any]) -> Iterator[Any]:
    yield from batches
    while True:
        yield None

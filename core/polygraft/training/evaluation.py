"""One pass over an evaluation loader: loss and metrics accumulated batch by batch (never all outputs), reduced
across DDP ranks, with the validation callbacks around it. A sharded (FSDP) model evaluates in lockstep: a rank
whose shard of the split ran out repeats its last batch, uncounted, until every rank is done (each forward is a
collective).

Example:
    >>> import polygraft
    >>> data = polygraft.load_dataset("synthetic-classification", size=16, in_features=3)
    >>> task = polygraft.create_task("classification", backbone="toy", label_names=data.label_names,
    ...                              backbone_options={"in_features": 3})
    >>> sorted(polygraft.Trainer({"progress": False}).evaluate(task, data))
    ['val/accuracy', 'val/loss', 'val/macro_f1']
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import torch

from polygraft.features import batch_size_of
from polygraft.inputs.datasets import raise_worker_errors
from polygraft.inputs.loaders import position_loader
from polygraft.training.fsdp import in_lockstep

if TYPE_CHECKING:
    from polygraft.training.trainer import Trainer


@torch.no_grad()
def evaluate_loader(trainer: Trainer, loader: Any, *, prefix: str) -> dict[str, float]:
    """``{prefix}/loss`` and the module's metrics over ``loader`` (``trainer.stage`` is ``prefix`` meanwhile)."""
    module = trainer.module
    trainer.stage = prefix
    for callback in trainer.callbacks:
        callback.on_validation_start(trainer)
    was_training = module.training
    module.eval()
    module.reset_metrics()
    sums = torch.zeros(2, dtype=torch.float64, device=trainer.device)  # loss × n, examples
    position_loader(loader, epoch=0, skip_batches=0, seed=trainer.config.seed)
    sharded = trainer.sharded is not None and module is trainer.sharded.module
    batches: Iterator[tuple[Any, bool]] = ((batch, True) for batch in raise_worker_errors(loader))
    if sharded:
        batches = in_lockstep(raise_worker_errors(loader), trainer.dist.any, split=prefix)
    for batch, counted in batches:
        batch = trainer._to_device(batch)
        with trainer.precision.autocast():
            output = module(batch)
        if not counted:
            continue
        n = batch_size_of(batch)
        sums[0] += output.loss.detach().double() * n
        sums[1] += n
        module.update_metrics(batch, output)
        for callback in trainer.callbacks:
            callback.on_validation_batch_end(trainer, batch, output)
    if sharded:  # forward without backward leaves the root unit gathered
        trainer.sharded.reshard()
    if trainer.dist.enabled:
        torch.distributed.all_reduce(sums)
    metrics = {f"{prefix}/loss": float(sums[0] / sums[1].clamp_min(1))}
    metrics.update({f"{prefix}/{name}": value for name, value in module.compute_metrics().items()})
    for callback in trainer.callbacks:
        callback.on_validation_end(trainer, metrics)
    module.train(was_training)
    trainer.stage = "train"
    return metrics

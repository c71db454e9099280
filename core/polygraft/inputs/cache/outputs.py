"""A frozen model's outputs for every training example (a distillation teacher's logits), computed once and kept
with the input cache.

:func:`keep_example_outputs` reads the training source once through the frozen model's own evaluation pipeline
(:attr:`ExampleOutputs.pipeline`), runs :meth:`ExampleOutputs.compute` on batches without gradients and keeps one
row per example in :class:`KeptOutputs`. Unlike prepared examples, which go to disk only when they do not fit in
memory, these rows are also written to the on-disk input cache whenever ``trainer.cache`` allows a disk cache
(``auto`` or ``disk``) and the source, the pipeline and the model can all fingerprint themselves: running the model
is the expensive part, so another run with the same model and data (a second seed, a tuning trial) reads them back.
The cache folder is checked like every input cache folder (key, sizes, sha256) and rebuilt when it does not match.

:meth:`KeptOutputs.attach` puts the rows of a batch's examples (by ``batch["meta"]["index"]``) into
``batch["example_outputs"][name]`` on the device.

Example:
    >>> import torch
    >>> from polygraft.inputs.cache.outputs import KeptOutputs
    >>> kept = KeptOutputs({"teacher": {"logits": torch.arange(6.0).reshape(3, 2)}})
    >>> batch = kept.attach({"meta": {"index": torch.tensor([2, 0])}}, torch.device("cpu"))
    >>> batch["example_outputs"]["teacher"]["logits"].tolist()
    [[4.0, 5.0], [0.0, 1.0]]
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from polygraft.errors import ConfigError, TrainingError
from polygraft.features import Batch, move_to_device
from polygraft.fingerprint import versions
from polygraft.inputs.cache.disk import DiskCache
from polygraft.inputs.datasets import raise_worker_errors
from polygraft.interfaces import DataSource, ExampleOutputs, FinetuneStrategy, TrainingModule

FORMAT = 1
"""Version of how the rows are stored; part of the cache key."""


@dataclass
class KeptOutputs:
    """Rows of per-example outputs by name and key (``tables[name][key]`` is ``(N, ...)``), and how each was got."""

    tables: dict[str, dict[str, torch.Tensor]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.tables)

    def attach(self, batch: Batch, device: torch.device) -> Batch:
        """``batch`` with ``example_outputs`` holding the rows of its examples (in batch order) on ``device``."""
        index = batch["meta"]["index"]
        batch["example_outputs"] = {
            name: {key: rows.index_select(0, index).to(device, non_blocking=True) for key, rows in table.items()}
            for name, table in self.tables.items()
        }
        return batch


@dataclass
class OutputsRun:
    """How one set of outputs was computed: the settings the trainer passes."""

    batch_size: int
    device: torch.device
    cache_mode: str = "auto"  # trainer.cache
    autocast: Callable[[], Any] = contextlib.nullcontext
    progress: bool = False
    root: Path | None = None  # the on-disk cache's folder (default: polygraft's cache)


def keep_all(strategies: Sequence[FinetuneStrategy], module: TrainingModule, source: DataSource,
             run: OutputsRun) -> KeptOutputs:
    """The outputs every strategy asks for (``FinetuneStrategy.example_outputs``), each computed or read once.
    Random number generators come back as they were (building a frozen model draws its initial weights), so a
    run that keeps outputs draws the same dropout masks and batch orders as one that does not."""
    kept = KeptOutputs()
    devices = [run.device.index or 0] if run.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        for strategy in strategies:
            outputs = strategy.example_outputs(module)
            if outputs is None:
                continue
            if outputs.name in kept.tables:
                raise ConfigError(f"two strategies keep example outputs named {outputs.name!r}; give each its own name")
            kept.tables[outputs.name], line = keep_example_outputs(outputs, source, run)
            kept.notes.append(f"input cache: train: {line}")
    return kept


def keep_example_outputs(outputs: ExampleOutputs, source: DataSource, run: OutputsRun) -> tuple[dict[str, torch.Tensor], str]:
    """The rows of ``outputs`` for every example of ``source`` (computed, or read from the disk cache) and one line
    for the run log saying which."""
    pipeline = outputs.pipeline
    if pipeline is None:
        raise TrainingError(f"{type(outputs).__name__} has no pipeline: set ExampleOutputs.pipeline to the frozen "
                            "model's evaluation pipeline")
    if pipeline.deterministic() is False:
        raise ConfigError(f"{outputs.name}: the pipeline that prepares its inputs ({type(pipeline).__name__}) is random, "
                          "but one output per example is computed once and kept; give it a deterministic (evaluation) "
                          "pipeline")
    disk, why = _disk(outputs, source, run)
    started = time.perf_counter()
    rebuilt = ""
    if disk is not None:
        store = disk.open()
        if store is not None:
            rows = _stack([store[i] for i in range(len(store))], outputs.name)
            outputs.release()
            return rows, (f"{outputs.name}: outputs of {len(source):,} training examples read from the input cache at "
                          f"{store.path} ({time.perf_counter() - started:.1f} s)")
        rebuilt = f" (rebuilt: {disk.problem})" if disk.problem else ""
    rows = _compute(outputs, source, run)
    seconds = time.perf_counter() - started
    if disk is None:
        return rows, (f"{outputs.name}: outputs of {len(source):,} training examples computed once in {seconds:.1f} s, "
                      f"kept in memory ({why})")
    writer = disk.writer()
    try:
        for index in range(len(source)):
            writer.add({key: table[index] for key, table in rows.items()})
        store = writer.commit()
    except BaseException:
        writer.abort()
        raise
    return rows, (f"{outputs.name}: outputs of {len(source):,} training examples computed once in {seconds:.1f} s, "
                  f"kept in the input cache at {store.path}{rebuilt}")


def _disk(outputs: ExampleOutputs, source: DataSource, run: OutputsRun) -> tuple[DiskCache | None, str]:
    """The disk cache of these outputs, or why they stay in memory."""
    if run.cache_mode in ("off", "memory"):
        return None, f"trainer.cache is {run.cache_mode}"
    parts = {"source": source.fingerprint(), "pipeline": outputs.pipeline.fingerprint() if outputs.pipeline else None,
             "model": outputs.fingerprint()}
    missing = [part for part, value in parts.items() if value is None]
    if missing:
        return None, f"the {' and the '.join(missing)} cannot be fingerprinted, so nothing goes to disk"
    from polygraft.assets import cache_dir

    key = {"kind": "example-outputs", "outputs_format": FORMAT, "name": outputs.name, **parts,
           "versions": versions(source, outputs.pipeline, outputs)}
    return DiskCache(run.root or cache_dir("prepared"), key, size=len(source),
                     name=f"{source.name or 'data'}-{outputs.name}"), ""


def _compute(outputs: ExampleOutputs, source: DataSource, run: OutputsRun) -> dict[str, torch.Tensor]:
    """Every example's outputs, in source order, as ``(N, ...)`` float CPU tensors."""
    from polygraft.inputs.loaders import SingleProcess, make_loader

    assert outputs.pipeline is not None
    loader = make_loader(source, outputs.pipeline, batch_size=run.batch_size, shuffle=False, seed=0, drop_last=False,
                         num_workers=0, ranks=SingleProcess(), pin_memory=False)
    bar = None
    if run.progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(source), unit="example", dynamic_ncols=True, file=sys.stderr, desc=outputs.name)
    tables: dict[str, torch.Tensor] = {}
    outputs.to(run.device)
    try:
        with torch.no_grad():
            for batch in raise_worker_errors(loader):
                index = batch["meta"]["index"]
                moved = {k: v if k == "meta" else move_to_device(v, run.device) for k, v in batch.items()}
                with run.autocast():
                    computed = outputs.compute(moved)
                for key, value in _checked(computed, len(index), outputs.name).items():
                    if key not in tables:
                        tables[key] = torch.zeros((len(source), *value.shape[1:]), dtype=torch.float32)
                    elif tables[key].shape[1:] != value.shape[1:]:
                        raise TrainingError(f"{outputs.name}: output {key!r} is {tuple(value.shape[1:])} per example "
                                            f"in one batch and {tuple(tables[key].shape[1:])} in another; outputs "
                                            "kept per example need one shape")
                    tables[key][index] = value.detach().float().cpu()
                if bar is not None:
                    bar.update(len(index))
    finally:
        if bar is not None:
            bar.close()
        outputs.release()
    return tables


def _checked(computed: Any, size: int, name: str) -> dict[str, torch.Tensor]:
    if not isinstance(computed, Mapping) or not computed:
        raise TrainingError(f"{name}: compute() must return a non-empty dict of tensors, got {type(computed).__name__}")
    for key, value in computed.items():
        if not isinstance(value, torch.Tensor) or value.dim() == 0 or value.shape[0] != size:
            shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
            raise TrainingError(f"{name}: output {key!r} must be a (batch={size}, ...) tensor, got {shape}")
        if not torch.isfinite(value).all():
            raise TrainingError(f"{name}: output {key!r} holds NaN or infinite values; check the frozen model")
    return dict(computed)


def _stack(rows: list[Mapping[str, torch.Tensor]], name: str) -> dict[str, torch.Tensor]:
    if not rows:
        raise TrainingError(f"{name}: the cached outputs are empty")
    return {key: torch.stack([row[key] for row in rows]).float() for key in rows[0]}

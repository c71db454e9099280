"""The DataPipeline: a task's picklable preprocessing of one raw example plus its collation into a batch.

A batch is ``{"inputs": {...what the backbone reads...}, <targets>..., "meta": {...bookkeeping...}}``. The trainer
moves everything except ``meta`` to the device; it adds ``meta["index"]`` (each example's position in its source).

Example:
    >>> from polygraft.builtin.toy import VectorPreprocessor
    >>> from polygraft.interfaces import DataPipeline
    >>> class Plain(DataPipeline):
    ...     def __init__(self): self.preprocessor = VectorPreprocessor(in_features=2)
    ...     def prepare(self, example): return {"inputs": self.preprocessor(example)}
    ...     def collate(self, items): return self.collate_inputs([i["inputs"] for i in items])
    >>> pipe = Plain()
    >>> sorted(pipe.collate([pipe.prepare({"x": [1.0, 2.0]})]))
    ['inputs', 'meta']
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from polygraft.features import Batch


class DataPipeline:
    """Picklable: ``prepare`` one raw example (inputs + target), ``collate`` prepared examples into a batch.

    It must not hold a reference to the training module, so DataLoader workers never copy the weights.
    """

    def prepare(self, example: Mapping[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    def collate(self, items: Sequence[Mapping[str, Any]]) -> Batch:
        raise NotImplementedError

    def collate_inputs(self, inputs: Sequence[Mapping[str, Any]]) -> Batch:
        """``{"inputs": preprocessor.collate(...), "meta": preprocessor.collate_meta(...)}`` for the prepared
        inputs of several examples (uses ``self.preprocessor``)."""
        preprocessor = self.preprocessor  # type: ignore[attr-defined]
        return {"inputs": preprocessor.collate(inputs), "meta": dict(preprocessor.collate_meta(inputs))}

    def lengths(self, examples: Sequence[Mapping[str, Any]]) -> list[int] | None:
        """Per-example compute size (e.g. tokens) for length-grouped batching, or ``None`` if unknown.

        The default asks the pipeline's ``preprocessor`` (see ``Preprocessor.lengths``), if it has one.
        """
        preprocessor = getattr(self, "preprocessor", None)
        return preprocessor.lengths(examples) if preprocessor is not None else None

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
from polygraft.interfaces.preprocessor import Preprocessor


class DataPipeline:
    """Picklable: ``prepare`` one raw example (inputs + target), ``collate`` prepared examples into a batch.

    It must not hold a reference to the training module, so DataLoader workers never copy the weights.

    The trainer prepares each example once and reuses the result across epochs and validations when preparation
    is deterministic (see :meth:`deterministic`); ``collate`` always runs per batch, so random masking or mixing
    done there stays random.
    """

    #: Whether ``prepare`` draws random numbers of its own, besides its preprocessor's (a random flip, a random
    #: crop of a long input): ``True`` = it does; ``False`` = ``prepare`` is a function of the raw example, the
    #: pipeline's settings and its preprocessor's output only; ``None`` (the default) = not declared.
    random_prepare: bool | None = None

    #: The backbone's preprocessor this pipeline runs (``None`` for a pipeline that prepares inputs itself): the
    #: defaults of :meth:`collate_inputs`, :meth:`deterministic`, :meth:`lengths` and :meth:`length_of` use it.
    preprocessor: Preprocessor | None = None

    def prepare(self, example: Mapping[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    def collate(self, items: Sequence[Mapping[str, Any]]) -> Batch:
        raise NotImplementedError

    def collate_inputs(self, inputs: Sequence[Mapping[str, Any]]) -> Batch:
        """``{"inputs": preprocessor.collate(...), "meta": preprocessor.collate_meta(...)}`` for the prepared
        inputs of several examples (uses ``self.preprocessor``)."""
        preprocessor = self.preprocessor
        if preprocessor is None:
            raise NotImplementedError(f"{type(self).__name__} has no preprocessor: override collate_inputs")
        return {"inputs": preprocessor.collate(inputs), "meta": dict(preprocessor.collate_meta(inputs))}

    def deterministic(self) -> bool | None:
        """``True`` when ``prepare`` gives the same result for the same example every time, ``False`` when it is
        random (augmentation in ``prepare`` or in the preprocessor), ``None`` when unknown.

        The default combines :attr:`random_prepare` with ``self.preprocessor.deterministic``. An undeclared
        pipeline whose preprocessor is deterministic is unknown; the trainer then still reuses its training
        results when the training pipeline equals the evaluation one (see ``polygraft.inputs.cache.plan``).
        """
        if self.random_prepare:
            return False
        preprocessor = self.preprocessor
        prepared_by = getattr(preprocessor, "deterministic", None) if preprocessor is not None else True
        if prepared_by is False:
            return False
        return True if self.random_prepare is False and prepared_by else None

    def fingerprint(self) -> str | None:
        """A text that changes whenever ``prepare``'s result for the same example could (the class, its settings
        and its preprocessor's :meth:`~polygraft.interfaces.Preprocessor.fingerprint`), or ``None`` when some
        part of the pipeline's state cannot be described. The default walks the pipeline's attributes."""
        from polygraft.fingerprint import state_fingerprint

        return state_fingerprint(self)

    def lengths(self, examples: Sequence[Mapping[str, Any]]) -> list[int] | None:
        """Per-example compute size (e.g. tokens) of raw examples for length-grouped batching, or ``None`` if
        unknown. The trainer asks this only when the source's own ``DataSource.lengths()`` says nothing and the
        prepared examples are not kept (else it takes :meth:`length_of` of each kept example). The default asks
        the pipeline's ``preprocessor`` (see ``Preprocessor.lengths``)."""
        return self.preprocessor.lengths(examples) if self.preprocessor is not None else None

    def length_of(self, prepared: Mapping[str, Any]) -> int | None:
        """The compute size of one *prepared* example (what :meth:`prepare` returned), or ``None``. The default
        asks the preprocessor about ``prepared["inputs"]`` (see ``Preprocessor.length_of``)."""
        inputs = prepared.get("inputs") if isinstance(prepared, Mapping) else None
        if self.preprocessor is None or not isinstance(inputs, Mapping):
            return None
        return self.preprocessor.length_of(inputs)

"""The preprocessor: a small picklable object that turns raw examples into model inputs.

It runs in DataLoader workers, separate from the ``nn.Module``. ``__call__`` handles one example; ``collate`` pads
a list of them into the tensors the backbone reads; ``collate_meta`` returns bookkeeping beside them. It is not
pickled into a model directory: ``polygraft.load`` rebuilds it from the backbone's ``export()`` options and checks
that ``describe()`` matches what was saved, so fitted state (statistics, a vocabulary) belongs in those options or
in files ``export`` writes.

Example:
    >>> from polygraft.builtin.toy import VectorPreprocessor
    >>> pre = VectorPreprocessor(in_features=2)
    >>> pre.collate([pre({"x": [1.0, 2.0]}), pre({"x": [3.0, 4.0]})])["x"].shape
    torch.Size([2, 2])
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from polygraft.interfaces.callback import Callback


class Preprocessor:
    """Base class. Subclasses keep only picklable state (no modules, no open files)."""

    #: which raw example key carries the input (``text``, ``image``, ``audio``, ``x``)
    input_key: str = "x"

    #: ``True`` when ``__call__`` returns the same output for the same example every time (no random augmentation)
    #: and :meth:`fingerprint` names every setting that changes that output: the trainer may then prepare each
    #: example once and keep the result, in memory or in a cache on disk. ``False`` for augmenting variants (what
    #: ``for_training`` returns when it augments). ``None`` (the default): unknown, so training examples are prepared
    #: every epoch and evaluation results are kept in memory only, never on disk.
    deterministic: bool | None = None

    def __call__(self, example: Mapping[str, Any]) -> dict[str, Any]:
        """Model inputs for one raw example (unbatched)."""
        raise NotImplementedError

    def collate(self, items: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """Pad and stack the inputs of several examples into batched tensors: only what the backbone reads."""
        raise NotImplementedError

    def collate_meta(self, items: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """Bookkeeping about the batch that the backbone does not read (``batch["meta"]``): for example
        ``truncated`` flags, ``word_ids`` or character ``offsets``. It stays on the CPU. Default: nothing."""
        return {}

    def callbacks(self) -> list[Callback]:
        """Trainer callbacks that count what :meth:`collate_meta` reports: a preprocessor that cuts long inputs and
        flags them as ``meta["truncated"]`` returns ``[polygraft.TruncationCounter()]``, so the count reaches the
        run log and ``results.json``. Default: none."""
        return []

    def fit(self, examples: Sequence[Mapping[str, Any]]) -> None:
        """Learn statistics from the raw training examples (a scaler's means, a vocabulary). The trainer calls it
        once before training, with the whole training set, on every process; a resumed run calls it again, so it
        must be deterministic. Whatever it learns must come back out of the backbone's ``export()`` options (or a
        file ``export`` writes), so ``polygraft.load`` rebuilds the same preprocessing. Default: nothing to fit."""

    def lengths(self, examples: Sequence[Mapping[str, Any]]) -> list[int] | None:
        """The size that drives compute for each raw example (tokens for text, frames for audio), or ``None``
        when examples are all alike (fixed-size images). The trainer uses it to batch similar lengths together
        (``trainer.group_by_length``) and to evaluate in length order; the default returns ``None`` without
        reading the examples."""
        return None

    def length_of(self, inputs: Mapping[str, Any]) -> int | None:
        """The compute size of one example's prepared inputs (what ``__call__`` returned): e.g. its token count.
        The trainer reads it from prepared examples it keeps, so nothing is prepared twice to learn lengths.
        Default: ``None`` (unknown; :meth:`lengths` is asked instead)."""
        return None

    def for_training(self, **augment: Any) -> Preprocessor:
        """The training-time variant (data augmentation); the default has none and returns ``self``."""
        return self

    def for_dense_prediction(self) -> Preprocessor:
        """The variant for dense tasks (detection): resize whole inputs to the model size without cropping, so
        coordinates scale linearly. Image preprocessors implement it; the default refuses."""
        from polygraft.errors import IncompatibleComponentsError

        raise IncompatibleComponentsError(
            f"{type(self).__name__} has no for_dense_prediction(): detection needs preprocessing that resizes whole "
            "inputs without cropping"
        )

    def for_question_answering(self, *, doc_stride: int, max_question_tokens: int, question_key: str = "question",
                               context_key: str = "context") -> Preprocessor:
        """The variant for extractive question answering (``question-answering``): it encodes each example's
        question with its context, splitting a context too long for the model into overlapping windows
        (``doc_stride`` tokens shared by consecutive windows; questions cut at ``max_question_tokens``, counted).

        Its ``__call__`` returns ``{"windows": [...], "truncated": bool}``, each window the model inputs of one row
        plus ``offsets`` (per token ``(start, end)`` characters in the context, ``(0, 0)`` off the context) and
        ``context_mask`` (per token, True on context tokens). ``collate`` stacks the windows of all examples as
        batch rows; ``collate_meta`` gives ``window_example`` (``(W,)``: the example of each row), ``offsets``
        (``(W, T, 2)``), ``context_mask`` (``(W, T)`` bool) and ``truncated`` (``(B,)``, one per example). Position
        0 of every row is where "no answer" is predicted (a special token such as ``[CLS]``). Text preprocessors
        implement it; the default refuses."""
        from polygraft.errors import IncompatibleComponentsError

        raise IncompatibleComponentsError(
            f"{type(self).__name__} has no for_question_answering(): question answering needs a backbone whose "
            "preprocessor encodes a question with its context and maps tokens to characters (polygraft-text's bert)"
        )

    def extent(self, example: Mapping[str, Any]) -> tuple[int, int]:
        """``(width, height)`` of a raw input before resizing (detection scales boxes by it): ``width``/``height``
        keys, a PIL-like ``.size``, or an array's last two dimensions."""
        from polygraft.errors import DataError

        if "width" in example and "height" in example:
            return int(example["width"]), int(example["height"])
        value = example.get(self.input_key)
        size = getattr(value, "size", None)
        if isinstance(size, tuple) and len(size) == 2:
            return int(size[0]), int(size[1])
        shape = getattr(value, "shape", None)
        if shape is not None and len(shape) >= 2:
            return int(shape[1]), int(shape[0])
        raise DataError(f"cannot tell the size of {self.input_key!r} to scale its boxes", path=example.get("_origin"))

    def read_input(self, value: str) -> dict[str, Any]:
        """A raw example from a command-line value (text as is; image/audio plugins open the file)."""
        return {self.input_key: value}

    def read_fields(self, fields: Mapping[str, str]) -> dict[str, Any]:
        """A raw example from named command-line values (``polygraft predict RUN --field question=... --field
        context=...``): the input key's value is read by :meth:`read_input` (an image path is opened), the other
        fields are passed as given. Preprocessors of several fields override it.

        Example:
            >>> Preprocessor().read_fields({"x": "1", "note": "a"})
            {'note': 'a', 'x': '1'}
        """
        example: dict[str, Any] = {name: value for name, value in fields.items() if name != self.input_key}
        if self.input_key in fields:
            example.update(self.read_input(fields[self.input_key]))
        return example

    def export_assets(self, directory: Path) -> list[str]:
        """Export: write the files a runtime needs besides :meth:`describe`'s settings (a tokenizer's files...)
        into ``directory`` and return their names. Default: none (the settings are the whole preprocessing)."""
        return []

    def describe(self) -> dict[str, Any]:
        """JSON-friendly settings (shown to people and saved in the run directory)."""
        return {"type": type(self).__name__}

    def fingerprint(self) -> str | None:
        """A text that changes whenever ``__call__``'s output for the same example could change; part of the key of
        the trainer's on-disk cache of prepared examples. The default is :meth:`describe` as JSON; override it when
        ``describe`` leaves something out (a tokenizer's vocabulary, fitted statistics), or return ``None`` when
        the output cannot be pinned down (nothing is then cached on disk)."""
        import json

        return json.dumps(self.describe(), sort_keys=True, default=str)

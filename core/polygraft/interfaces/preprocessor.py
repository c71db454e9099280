"""The preprocessor: a small picklable object that turns raw examples into model inputs.

It runs in DataLoader workers and is saved in the run directory beside the weights, separate from the
``nn.Module``. ``__call__`` handles one example; ``collate`` pads a list of them into tensors.

Example:
    >>> from polygraft.builtin.toy import VectorPreprocessor
    >>> pre = VectorPreprocessor(in_features=2)
    >>> pre.collate([pre({"x": [1.0, 2.0]}), pre({"x": [3.0, 4.0]})])["x"].shape
    torch.Size([2, 2])
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


class Preprocessor:
    """Base class. Subclasses keep only picklable state (no modules, no open files)."""

    #: which raw example key carries the input (``text``, ``image``, ``audio``, ``x``)
    input_key: str = "x"

    def __call__(self, example: Mapping[str, Any]) -> dict[str, Any]:
        """Model inputs for one raw example (unbatched)."""
        raise NotImplementedError

    def collate(self, items: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """Pad and stack the inputs of several examples into batched tensors."""
        raise NotImplementedError

    def lengths(self, examples: Sequence[Mapping[str, Any]]) -> list[int] | None:
        """The size that drives compute for each raw example (tokens for text, frames for audio), or ``None``
        when examples are all alike (fixed-size images). The trainer uses it to batch similar lengths together
        (``trainer.group_by_length``) and to evaluate in length order; the default returns ``None`` without
        reading the examples."""
        return None

    def for_training(self, **augment: Any) -> Preprocessor:
        """The training-time variant (data augmentation); the default has none and returns ``self``."""
        return self

    def read_input(self, value: str) -> dict[str, Any]:
        """A raw example from a command-line value (text as is; image/audio plugins open the file)."""
        return {self.input_key: value}

    def describe(self) -> dict[str, Any]:
        """JSON-friendly settings (shown to people and saved in the run directory)."""
        return {"type": type(self).__name__}

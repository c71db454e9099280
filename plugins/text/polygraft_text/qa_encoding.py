"""Question + context encoding for extractive question answering, with overflow windows over long contexts.

``TextPreprocessor.for_question_answering`` returns a :class:`QuestionContextPreprocessor`. It tokenizes the
question with its context as a pair (``[CLS] question [SEP] context [SEP]`` for BERT), truncating only the context:
a context that does not fit in ``max_length`` tokens is split into windows that share ``doc_stride`` tokens with
their neighbour (the Hugging Face tokenizer's ``return_overflowing_tokens`` with ``stride``, as in transformers'
``run_qa.py``), so no part of the context is ever dropped. A question longer than ``max_question_tokens`` is cut,
counted in ``truncation`` and flagged in ``meta["truncated"]``, like any truncation.

Each window keeps its character ``offsets`` into the context (``(0, 0)`` on question and special tokens) and a
``context_mask``; ``collate`` stacks every window of every example as one row and ``collate_meta`` tells which
example each row belongs to (``window_example``).

Example:
    >>> import tempfile, pathlib
    >>> from transformers import BertTokenizerFast
    >>> from polygraft_text.preprocessing import TextPreprocessor
    >>> vocab = pathlib.Path(tempfile.mkdtemp()) / "vocab.txt"
    >>> _ = vocab.write_text("\\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "who", "ada", "bob", "sat", "ran", "?"]))
    >>> pre = TextPreprocessor(BertTokenizerFast(vocab=str(vocab)), max_length=8)
    >>> qa = pre.for_question_answering(doc_stride=1, max_question_tokens=2)
    >>> windows = qa({"question": "who sat", "context": "ada sat bob ran"})["windows"]
    >>> [w["input_ids"] for w in windows], windows[1]["offsets"][4:6]
    ([[2, 4, 7, 3, 5, 7, 6, 3], [2, 4, 7, 3, 6, 8, 3]], [(8, 11), (12, 15)])
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from polygraft.errors import ConfigError, DataError
from polygraft_text.preprocessing import TextPreprocessor

logger = logging.getLogger(__name__)


class QuestionContextPreprocessor(TextPreprocessor):
    """A question and its context as one or more overlapping windows of at most ``max_length`` tokens."""

    def __init__(self, tokenizer: Any, *, max_length: int, doc_stride: int, max_question_tokens: int,
                 question_key: str = "question", context_key: str = "context") -> None:
        super().__init__(tokenizer, max_length=max_length)
        self.doc_stride = int(doc_stride)
        self.max_question_tokens = int(max_question_tokens)
        self.question_key = question_key
        self.context_key = context_key
        room = self.max_length - self.max_question_tokens - tokenizer.num_special_tokens_to_add(pair=True)
        if room <= self.doc_stride:
            raise ConfigError(
                f"question answering with max_length={self.max_length}: a window holds up to "
                f"{self.max_question_tokens} question tokens and {tokenizer.num_special_tokens_to_add(pair=True)} "
                f"special tokens, which leaves {room} context tokens, not more than doc_stride={self.doc_stride}; "
                "lower task_options.doc_stride or max_question_tokens, or raise backbone_options.max_length"
            )

    def _texts(self, example: Mapping[str, Any]) -> tuple[str, str]:
        texts = []
        for key in (self.question_key, self.context_key):
            value = example.get(key)
            if not isinstance(value, str) or not value.strip():
                raise DataError(f"{key!r} must be a non-empty text, got {value!r}", path=example.get("_origin"))
            texts.append(value)
        return texts[0], texts[1]

    def _question(self, question: str, origin: Any) -> tuple[str, bool]:
        """The question cut to ``max_question_tokens`` tokens (at a token's end), and whether it was cut."""
        pieces = self.tokenizer(question, add_special_tokens=False, return_offsets_mapping=True)
        offsets = pieces["offset_mapping"]
        if len(offsets) <= self.max_question_tokens:
            return question, False
        self.truncation["examples"] += 1
        self.truncation["tokens_dropped"] += len(offsets) - self.max_question_tokens
        if not self._warned:
            self._warned = True
            logger.warning("%s: a question longer than max_question_tokens=%d was cut (counted in "
                           "preprocessor.truncation and batch['meta']['truncated'])", origin or "example",
                           self.max_question_tokens)
        return question[: offsets[self.max_question_tokens - 1][1]], True

    def __call__(self, example: Mapping[str, Any]) -> dict[str, Any]:
        question, context = self._texts(example)
        question, cut = self._question(question, example.get("_origin"))
        encoding = self.tokenizer(question, context, truncation="only_second", max_length=self.max_length,
                                  stride=self.doc_stride, return_overflowing_tokens=True,
                                  return_offsets_mapping=True)
        windows = []
        for row in range(len(encoding["input_ids"])):
            in_context = [sequence == 1 for sequence in encoding.sequence_ids(row)]
            window: dict[str, Any] = {
                "input_ids": encoding["input_ids"][row],
                "offsets": [tuple(o) if keep else (0, 0) for o, keep in zip(encoding["offset_mapping"][row],
                                                                            in_context, strict=True)],
                "context_mask": in_context,
            }
            if "token_type_ids" in encoding:
                window["token_type_ids"] = encoding["token_type_ids"][row]
            windows.append(window)
        return {"windows": windows, "truncated": cut}

    def lengths(self, examples: Sequence[Mapping[str, Any]]) -> list[int]:
        """Tokens of question + context (every window together), for length-grouped batches."""
        pairs = [self._texts(examples[i]) for i in range(len(examples))]
        result: list[int] = []
        for start in range(0, len(pairs), 1024):
            chunk = pairs[start : start + 1024]
            encoded = self.tokenizer([q for q, _ in chunk], [c for _, c in chunk], truncation=False)
            result.extend(len(ids) for ids in encoded["input_ids"])
        return result

    def length_of(self, inputs: Mapping[str, Any]) -> int:
        """Tokens of one encoded example: every window's, together."""
        return sum(len(window["input_ids"]) for window in inputs["windows"])

    @staticmethod
    def _windows(items: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
        return [window for item in items for window in item["windows"]]

    def collate(self, items: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """Every window of every example as one row: ``input_ids``, ``attention_mask`` (``token_type_ids``)."""
        return super().collate(self._windows(items))

    def collate_meta(self, items: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """``window_example`` (row → example), ``offsets``, ``context_mask`` per row; ``truncated`` per example."""
        windows = self._windows(items)
        return {
            "window_example": torch.tensor([row for row, item in enumerate(items) for _ in item["windows"]],
                                           dtype=torch.long),
            "offsets": self._padded(windows, "offsets", (0, 0)).view(len(windows), -1, 2),
            "context_mask": self._padded(windows, "context_mask", False).bool(),
            "truncated": torch.tensor([bool(item.get("truncated", False)) for item in items]),
        }

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "type": "text question+context", "doc_stride": self.doc_stride,
                "max_question_tokens": self.max_question_tokens}

    def fingerprint(self) -> str:
        import json

        return json.dumps({"base": super().fingerprint(), "question_key": self.question_key,
                           "context_key": self.context_key, **self.describe()}, sort_keys=True)

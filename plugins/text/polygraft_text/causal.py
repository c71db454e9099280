"""Text preprocessing for causal (GPT-style) language models: ``<bos> tokens <eos>``, padded per batch.

The begin and end tokens are the tokenizer's own (``<|endoftext|>`` for GPT-2's BPE) or, for a WordPiece
vocabulary, ``[CLS]`` and ``[SEP]``. Texts longer than ``max_length`` (both special tokens included) keep their
beginning; every cut is counted and flagged in ``meta["truncated"]`` as in :mod:`polygraft_text.preprocessing`.

Example:
    >>> import tempfile, pathlib
    >>> from transformers import BertTokenizerFast
    >>> vocab = pathlib.Path(tempfile.mkdtemp()) / "vocab.txt"
    >>> _ = vocab.write_text("\\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "good", "film"]))
    >>> pre = CausalTextPreprocessor(BertTokenizerFast(vocab=str(vocab)), max_length=3)
    >>> pre({"text": "good film"})["input_ids"], pre.truncation["tokens_dropped"]
    ([2, 4, 3], 1)
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from polygraft.errors import ConfigError, DataError, IncompatibleComponentsError
from polygraft_text.preprocessing import TextPreprocessor

logger = logging.getLogger(__name__)


def special_ids(tokenizer: Any) -> dict[str, int]:
    """bos/eos/pad ids: the tokenizer's own, else WordPiece's ``[CLS]``/``[SEP]``/``[PAD]``; pad falls back to eos."""
    bos = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.cls_token_id
    eos = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else tokenizer.sep_token_id
    if bos is None or eos is None:
        raise ConfigError("a causal language model needs a tokenizer with begin/end tokens (bos/eos, or "
                          "[CLS]/[SEP])")
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    return {"bos_token_id": int(bos), "eos_token_id": int(eos), "pad_token_id": int(pad)}


class CausalTextPreprocessor(TextPreprocessor):
    """``<bos> text <eos>`` token ids, word ids and character offsets; single texts only (no pairs)."""

    def __init__(self, tokenizer: Any, *, max_length: int = 128, text_key: str = "text",
                 tokens_key: str = "tokens") -> None:
        super().__init__(tokenizer, max_length=max_length, text_key=text_key, tokens_key=tokens_key)
        if self.max_length < 3:
            raise ConfigError(f"max_length must leave room for the begin and end tokens, got {self.max_length}")
        ids = special_ids(tokenizer)
        self.bos_id, self.eos_id = ids["bos_token_id"], ids["eos_token_id"]

    @property
    def pad_token_id(self) -> int:
        return int(special_ids(self.tokenizer)["pad_token_id"])

    def _content(self, example: Mapping[str, Any]) -> tuple[Any, bool]:
        text, pair, split = self._unpack(example)
        if pair is not None:
            raise DataError(f"a causal language model reads one text per example; drop {self.pair_key!r} or join "
                            "the texts", path=example.get("_origin"))
        return text, split

    def __call__(self, example: Mapping[str, Any]) -> dict[str, Any]:
        text, split = self._content(example)
        encoding = self.tokenizer(text, is_split_into_words=split, add_special_tokens=False,
                                  return_offsets_mapping=True)
        room = self.max_length - 2
        ids = encoding["input_ids"]
        dropped = max(0, len(ids) - room)
        words = [-1 if w is None else w for w in encoding.word_ids()][:room]
        item = {
            "input_ids": [self.bos_id, *ids[:room], self.eos_id],
            "word_ids": [-1, *words, -1],
            "offsets": [(0, 0), *[tuple(o) for o in encoding["offset_mapping"][:room]], (0, 0)],
            "truncated": dropped > 0,
        }
        if dropped:
            self.truncation["examples"] += 1
            self.truncation["tokens_dropped"] += dropped
            if not self._warned:
                self._warned = True
                logger.warning("%s: text longer than max_length=%d tokens was truncated (counted in "
                               "preprocessor.truncation and batch['meta']['truncated'])",
                               example.get("_origin") or "example", self.max_length)
        return item

    def lengths(self, examples: Sequence[Mapping[str, Any]]) -> list[int]:
        contents = [self._content(examples[i]) for i in range(len(examples))]
        result = [0] * len(contents)
        for split in (False, True):
            indices = [i for i, (_, s) in enumerate(contents) if s == split]
            for start in range(0, len(indices), 1024):
                chunk = indices[start : start + 1024]
                encoded = self.tokenizer([contents[i][0] for i in chunk], is_split_into_words=split,
                                         add_special_tokens=False)
                for i, tokens in zip(chunk, encoded["input_ids"], strict=True):
                    result[i] = min(len(tokens) + 2, self.max_length)
        return result

    def for_question_answering(self, **options: Any) -> TextPreprocessor:
        if self.tokenizer.num_special_tokens_to_add(pair=True) == 0:
            raise IncompatibleComponentsError(
                "question answering predicts 'no answer' at a leading special token, and this tokenizer adds none "
                "to a question+context pair; use a WordPiece tokenizer (tokenizer: minilm-l6) or a bert backbone")
        return super().for_question_answering(**options)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "type": "text causal", "bos_token_id": self.bos_id,
                "eos_token_id": self.eos_id}

"""The text preprocessor: a Hugging Face tokenizer wrapped as a picklable polygraft Preprocessor.

Raw examples are ``{"text": str}`` (optionally ``"text_pair": str``) or pre-split words ``{"tokens": [str, ...]}``.
``__call__`` tokenizes one example without padding; ``collate`` pads each batch to its own longest sequence
(dynamic padding, never to ``max_length``).

Truncation is never silent. Every example cut at ``max_length`` is flagged in the batch's bookkeeping as
``meta["truncated"]`` (a ``(B,)`` bool tensor, from ``collate_meta``), which the truncation counter this
preprocessor hands the trainer (``callbacks()``) counts, even when tokenization ran in DataLoader worker processes;
the first cut in a process is logged with a warning (and ``preprocessor.truncation`` tallies that process's cuts).

The tokenizer's own thread pool is switched off (``TOKENIZERS_PARALLELISM=false`` unless the environment says
otherwise): one example is tokenized at a time, and a Rust pool shared with forked DataLoader workers deadlocks.

Each tokenized example also carries ``word_ids`` (the word each token belongs to, -1 for special tokens and
padding) and character ``offsets`` in ``meta``, which token classification uses for label alignment and entity
spans. ``collate`` returns only what the encoder reads.

Example:
    >>> import tempfile, pathlib
    >>> from transformers import BertTokenizerFast
    >>> vocab = pathlib.Path(tempfile.mkdtemp()) / "vocab.txt"
    >>> _ = vocab.write_text("\\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hello", "world"]))
    >>> pre = TextPreprocessor(BertTokenizerFast(vocab=str(vocab)), max_length=16)
    >>> items = [pre({"text": "hello world"}), pre({"text": "hello"})]
    >>> pre.collate(items)["input_ids"].tolist(), pre.collate_meta(items)["word_ids"].tolist()
    ([[2, 5, 6, 3], [2, 5, 3, 0]], [[-1, 0, 1, -1], [-1, 0, -1, -1]])
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from polygraft.errors import DataError
from polygraft.interfaces.preprocessor import Preprocessor

logger = logging.getLogger(__name__)


class TextPreprocessor(Preprocessor):
    """Tokenize text (or pre-split words) with a Hugging Face fast tokenizer; pad per batch."""

    input_key = "text"
    deterministic = True  # the same text always gives the same tokens

    def __init__(self, tokenizer: Any, *, max_length: int = 128, text_key: str = "text",
                 pair_key: str = "text_pair", tokens_key: str = "tokens") -> None:
        if not getattr(tokenizer, "is_fast", False):
            raise TypeError("TextPreprocessor needs a fast (Rust-backed) tokenizer for word ids and offsets")
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # before any worker forks (see module docstring)
        self.tokenizer = tokenizer
        self.max_length = int(max_length)
        self.text_key = text_key
        self.pair_key = pair_key
        self.tokens_key = tokens_key
        self.truncation: Counter[str] = Counter()
        self._warned = False
        self._tokenizer_hash: str | None = None

    @property
    def pad_token_id(self) -> int:
        pad = self.tokenizer.pad_token_id
        return 0 if pad is None else int(pad)

    def _unpack(self, example: Mapping[str, Any]) -> tuple[Any, str | None, bool]:
        """(text or word list, text pair, is_split_into_words) of one raw example; bad input names its origin."""
        origin = example.get("_origin")
        if self.tokens_key in example:
            words = example[self.tokens_key]
            if not isinstance(words, list | tuple) or not all(isinstance(w, str) for w in words):
                raise DataError(f"{self.tokens_key!r} must be a list of strings, got {type(words).__name__}",
                                path=origin)
            return list(words), None, True
        if self.text_key in example:
            text = example[self.text_key]
            if not isinstance(text, str):
                raise DataError(f"{self.text_key!r} must be a string, got {type(text).__name__}", path=origin)
            return text, example.get(self.pair_key), False
        raise DataError(f"example has neither {self.text_key!r} nor {self.tokens_key!r} (keys: {sorted(example)})",
                        path=origin)

    def lengths(self, examples: Sequence[Mapping[str, Any]]) -> list[int]:
        """Token count of each example after truncation (special tokens included), tokenized in batches: the
        trainer groups training batches by it (``trainer.group_by_length``) and evaluates in length order."""
        unpacked = [self._unpack(examples[i]) for i in range(len(examples))]
        result = [0] * len(unpacked)
        kinds: dict[tuple[bool, bool], list[int]] = {}
        for index, (_, pair, split) in enumerate(unpacked):
            kinds.setdefault((split, pair is not None), []).append(index)
        for (split, has_pair), indices in kinds.items():
            for start in range(0, len(indices), 1024):
                chunk = indices[start : start + 1024]
                texts = [unpacked[i][0] for i in chunk]
                pairs = [unpacked[i][1] for i in chunk] if has_pair else None
                encoded = self.tokenizer(texts, pairs, is_split_into_words=split, truncation=True,
                                         max_length=self.max_length)
                for i, ids in zip(chunk, encoded["input_ids"], strict=True):
                    result[i] = len(ids)
        return result

    @property
    def max_chars(self) -> int:
        """Characters of a text kept before tokenizing: far more than ``max_length`` tokens ever need, so a
        10 MB input costs what a long paragraph costs (the cut is flagged as truncation)."""
        return max(4096, 64 * self.max_length)

    def _clipped(self, value: Any) -> tuple[Any, bool]:
        if isinstance(value, str) and len(value) > self.max_chars:
            return value[: self.max_chars], True
        if isinstance(value, list) and sum(len(word) + 1 for word in value) > self.max_chars:
            kept, size = [], 0
            for word in value:
                size += len(word) + 1
                if size > self.max_chars:
                    break
                kept.append(word)
            return kept, True
        return value, False

    def __call__(self, example: Mapping[str, Any]) -> dict[str, Any]:
        origin = example.get("_origin")
        text, pair, split = self._unpack(example)
        text, clipped = self._clipped(text)
        pair, clipped_pair = self._clipped(pair)
        encoding = self.tokenizer(text, pair, is_split_into_words=split, truncation=True,
                                  max_length=self.max_length, return_offsets_mapping=True,
                                  return_overflowing_tokens=False, return_length=False)
        item: dict[str, Any] = {
            "input_ids": encoding["input_ids"],
            "word_ids": [-1 if w is None else w for w in encoding.word_ids()],
            "offsets": encoding["offset_mapping"],
        }
        if "token_type_ids" in encoding:
            item["token_type_ids"] = encoding["token_type_ids"]
        dropped = self._dropped_tokens(encoding, text, pair, split)
        if clipped or clipped_pair:
            dropped = max(dropped, 1)  # cut before tokenizing: certainly longer than max_length
        item["truncated"] = dropped > 0
        if dropped > 0:
            self.truncation["examples"] += 1
            self.truncation["tokens_dropped"] += dropped
            if not self._warned:
                self._warned = True
                logger.warning("%s: text longer than max_length=%d tokens was truncated (counted in "
                               "preprocessor.truncation and batch['truncated'])", origin or "example",
                               self.max_length)
        return item

    def _dropped_tokens(self, encoding: Any, text: Any, pair: str | None, split: bool) -> int:
        """Tokens cut by truncation. A single text reads them from the Rust encoding's overflow (no second
        tokenization); a text pair, whose overflow lists combinations, is re-tokenized without truncation."""
        if len(encoding["input_ids"]) < self.max_length:
            return 0
        rust = encoding.encodings[0] if getattr(encoding, "encodings", None) else None
        if pair is None and rust is not None:
            return sum(len(piece.special_tokens_mask) - sum(piece.special_tokens_mask) for piece in rust.overflowing)
        full = self.tokenizer(text, pair, is_split_into_words=split, truncation=False, add_special_tokens=True)
        return len(full["input_ids"]) - len(encoding["input_ids"])

    def _padded(self, items: Sequence[Mapping[str, Any]], key: str, fill: Any) -> torch.Tensor:
        if not items:
            raise ValueError("cannot collate an empty batch")
        length = max(len(item["input_ids"]) for item in items)
        return torch.tensor([list(item[key]) + [fill] * (length - len(item[key])) for item in items],
                            dtype=torch.long)

    def length_of(self, inputs: Mapping[str, Any]) -> int:
        """Tokens of one tokenized example (special tokens included)."""
        return len(inputs["input_ids"])

    def callbacks(self) -> list[Any]:
        """Counts the examples cut at ``max_length`` (``meta["truncated"]``) into the run log and results."""
        import polygraft

        return [polygraft.TruncationCounter()]

    def collate(self, items: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """``input_ids`` padded with the pad token, ``attention_mask`` (and ``token_type_ids`` for pairs)."""
        ids = self._padded(items, "input_ids", self.pad_token_id)
        lengths = torch.tensor([len(item["input_ids"]) for item in items])
        batch: dict[str, Any] = {
            "input_ids": ids,
            "attention_mask": (torch.arange(ids.shape[1])[None, :] < lengths[:, None]).long(),
        }
        if "token_type_ids" in items[0]:
            batch["token_type_ids"] = self._padded(items, "token_type_ids", 0)
        return batch

    def collate_meta(self, items: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """``word_ids`` (-1 on special tokens and padding), character ``offsets`` and ``truncated`` flags."""
        offsets = self._padded(items, "offsets", (0, 0))
        return {
            "word_ids": self._padded(items, "word_ids", -1),
            "offsets": offsets.view(len(items), -1, 2),
            "truncated": torch.tensor([bool(item.get("truncated", False)) for item in items]),
        }

    def for_question_answering(self, *, doc_stride: int, max_question_tokens: int, question_key: str = "question",
                               context_key: str = "context") -> TextPreprocessor:
        """Question + context pairs in overlapping windows (see :mod:`polygraft_text.qa_encoding`)."""
        from polygraft_text.qa_encoding import QuestionContextPreprocessor

        return QuestionContextPreprocessor(self.tokenizer, max_length=self.max_length, doc_stride=doc_stride,
                                           max_question_tokens=max_question_tokens, question_key=question_key,
                                           context_key=context_key)

    def describe(self) -> dict[str, Any]:
        return {
            "type": "text",
            "tokenizer": type(self.tokenizer).__name__,
            "vocab_size": len(self.tokenizer),
            "max_length": self.max_length,
            "padding": "dynamic (longest in batch)",
            "lowercase": bool(getattr(self.tokenizer, "do_lower_case", False)),
        }

    def export_assets(self, directory: Path) -> list[str]:
        """The tokenizer's files (``tokenizer.json``, its config and vocabulary), as ``save_pretrained`` writes them."""
        directory.mkdir(parents=True, exist_ok=True)
        before = set(directory.iterdir())
        self.tokenizer.save_pretrained(str(directory))
        return sorted(path.name for path in set(directory.iterdir()) - before)

    def fingerprint(self) -> str:
        """Every setting that changes the tokens: the tokenizer's full definition (vocabulary, normaliser,
        pre-tokenizer, special tokens: its ``tokenizer.json``, hashed once), the keys read and ``max_length``."""
        import hashlib
        import json
        from importlib.metadata import version

        if self._tokenizer_hash is None:
            definition = self.tokenizer.backend_tokenizer.to_str()
            special = json.dumps(self.tokenizer.special_tokens_map, sort_keys=True, default=str)
            self._tokenizer_hash = hashlib.sha256((definition + special).encode()).hexdigest()
        return json.dumps({**self.describe(), "tokenizer_sha256": self._tokenizer_hash, "text_key": self.text_key,
                           "pair_key": self.pair_key, "tokens_key": self.tokens_key,
                           "tokenizers": version("tokenizers")}, sort_keys=True)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["truncation"] = Counter()  # each process counts its own
        return state

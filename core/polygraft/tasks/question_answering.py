"""Extractive question answering: a start/end span head over any token-sequence backbone (SQuAD v1.1 and v2.0).

Raw examples are ``{"question": str, "context": str, "answers": [{"text": str, "answer_start": int}, ...]}`` (the
SQuAD layout; ``answers`` may be left out to predict, and is ``[]`` for an unanswerable question). The backbone's
preprocessor encodes the question with its context (its ``for_question_answering`` variant, which polygraft-text's
tokenizers implement): a context longer than the model's ``max_length`` is split into overlapping windows
(``doc_stride`` tokens shared by neighbours), each window one batch row, with character ``offsets`` and a
``context_mask`` in ``batch["meta"]``. The task itself reads only sequence features and that bookkeeping.

Training follows the BERT/Hugging Face recipe: per window, the first gold answer's first and last tokens are the
targets when the window holds the whole answer, else position 0 (the "no answer" slot, ``[CLS]``); the loss is the
mean of the start and end cross-entropies. Decoding takes, over all windows of a question, the span ``i ≤ j`` of
context tokens (at most ``max_answer_tokens``) with the highest start + end logit, and maps it back to characters
of the context. With ``allow_no_answer`` (SQuAD v2.0), the question is answered "no answer" when the null score
(the lowest ``start[0] + end[0]`` over its windows) exceeds the best span score by more than
``no_answer_threshold``; validation also reports the best threshold (see :mod:`polygraft.tasks.squad_metrics`).

Metrics are the official SQuAD exact match and F1 (fractions), over all ranks under torch.distributed.

Example:
    >>> import torch
    >>> from polygraft.tasks.question_answering import best_spans
    >>> start = torch.tensor([[0.0, 1.0, 5.0, 0.0]]); end = torch.tensor([[0.0, 0.0, 1.0, 4.0]])
    >>> best_spans(start, end, torch.tensor([[False, True, True, True]]), max_answer_tokens=30)
    (tensor([9.]), tensor([2]), tensor([3]))
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from polygraft.errors import ConfigError, DataError
from polygraft.features import Batch, Features
from polygraft.interfaces.backbone import Backbone
from polygraft.interfaces.datasource import DataSource
from polygraft.interfaces.head import Head
from polygraft.interfaces.pipeline import DataPipeline
from polygraft.interfaces.preprocessor import Preprocessor
from polygraft.interfaces.task import Task
from polygraft.interfaces.training_module import StepOutput
from polygraft.tasks.squad_metrics import QuestionScore, SquadScores

LABEL_NAMES = ["start", "end"]


class SpanHead(Head):
    """Dropout + a linear layer giving a start and an end logit per token; padding gets a very low logit."""

    def __init__(self, in_features: int, *, dropout: float = 0.1) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.linear = nn.Linear(in_features, 2)

    def forward(self, features: Features) -> torch.Tensor:
        if features.sequence is None:
            raise ValueError("question answering needs sequence features; this backbone gave none")
        logits = self.linear(self.dropout(features.sequence)).float()
        if features.mask is not None:
            logits = logits.masked_fill(~features.mask.bool()[..., None], -1e4)
        return logits  # (rows, tokens, 2)


def answer_positions(offsets: Sequence[Sequence[int]], context_mask: Sequence[bool], start_char: int | None,
                     end_char: int | None) -> tuple[int, int]:
    """Token positions ``(first, last)`` of the characters ``[start_char, end_char)`` in one window, or ``(0, 0)``
    when the window does not hold the whole answer (or there is none)."""
    if start_char is None or end_char is None:
        return 0, 0
    inside = [pos for pos, keep in enumerate(context_mask) if keep]
    if not inside or offsets[inside[0]][0] > start_char or offsets[inside[-1]][1] < end_char:
        return 0, 0
    first = next(pos for pos in inside if offsets[pos][1] > start_char)
    last = next(pos for pos in reversed(inside) if offsets[pos][0] < end_char)
    return (first, last) if first <= last else (0, 0)


def best_spans(start: torch.Tensor, end: torch.Tensor, context_mask: torch.Tensor, *,
               max_answer_tokens: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per row: the best score ``start[i] + end[j]`` over context tokens ``i ≤ j < i + max_answer_tokens``, and
    ``i``, ``j`` (score ``-inf`` for a row without context tokens)."""
    rows, length = start.shape
    low = torch.finfo(torch.float32).min
    valid = context_mask.to(start.device).bool()
    s = start.float().masked_fill(~valid, low)
    e = end.float().masked_fill(~valid, low)
    index = torch.arange(length, device=start.device)
    band = (index[None, :] >= index[:, None]) & (index[None, :] - index[:, None] < max_answer_tokens)
    scores = (s[:, :, None] + e[:, None, :]).masked_fill(~band, float("-inf"))
    scores = scores.masked_fill(~(valid[:, :, None] & valid[:, None, :]), float("-inf"))
    best, flat = scores.view(rows, -1).max(dim=1)
    return best, flat // length, flat % length


class QuestionAnsweringPipeline(DataPipeline):
    """The preprocessor's question+context windows plus, when the example has answers, per-window targets."""

    random_prepare = False

    def __init__(self, preprocessor: Preprocessor, *, question_key: str, context_key: str, answers_key: str,
                 allow_no_answer: bool) -> None:
        self.preprocessor = preprocessor
        self.question_key = question_key
        self.context_key = context_key
        self.answers_key = answers_key
        self.allow_no_answer = allow_no_answer

    def prepare(self, example: Mapping[str, Any]) -> dict[str, Any]:
        origin = example.get("_origin")
        for key in (self.question_key, self.context_key):
            if not isinstance(example.get(key), str) or not example[key].strip():
                raise DataError(f"question answering needs a non-empty {key!r} text; the example has "
                                f"{sorted(k for k in example if not k.startswith('_'))}", path=origin)
        context = example[self.context_key]
        inputs = self.preprocessor(example)
        item: dict[str, Any] = {"inputs": inputs, "context": context}
        if self.answers_key in example:
            spans = answer_spans(example[self.answers_key], context, origin)
            if not spans and not self.allow_no_answer:
                raise DataError("this question has no answer (SQuAD v2 style); set task_options.allow_no_answer: "
                                "true to train and evaluate unanswerable questions", path=origin)
            item["answers"] = [context[a:b] for a, b in spans]
            first = spans[0] if spans else (None, None)
            positions = [answer_positions(w["offsets"], w["context_mask"], *first) for w in inputs["windows"]]
            item["start_positions"] = [p[0] for p in positions]
            item["end_positions"] = [p[1] for p in positions]
        return item

    def collate(self, items: Sequence[Mapping[str, Any]]) -> Batch:
        batch = self.collate_inputs([item["inputs"] for item in items])
        batch["meta"]["contexts"] = [item["context"] for item in items]
        if items and all("answers" in item for item in items):
            batch["meta"]["answers"] = [item["answers"] for item in items]
            for key in ("start_positions", "end_positions"):
                batch[key] = torch.tensor([p for item in items for p in item[key]], dtype=torch.long)
        return batch


def answer_spans(answers: Any, context: str, origin: Any = None) -> list[tuple[int, int]]:
    """``[(start, end), ...]`` characters of SQuAD answers ``[{"text", "answer_start"}]``, each checked to lie in
    the context and to match its text there."""
    if not isinstance(answers, list):
        raise DataError(f"'answers' must be a list of {{text, answer_start}}, got {type(answers).__name__}",
                        path=origin)
    spans = []
    for answer in answers:
        text = answer.get("text") if isinstance(answer, Mapping) else None
        start = answer.get("answer_start") if isinstance(answer, Mapping) else None
        if not isinstance(text, str) or not text or not isinstance(start, int) or isinstance(start, bool):
            raise DataError(f"an answer needs a non-empty 'text' and an integer 'answer_start', got {answer!r}",
                            path=origin)
        if start < 0 or start + len(text) > len(context):
            raise DataError(f"answer {text!r} at character {start} lies outside its context ({len(context)} "
                            "characters)", path=origin)
        if context[start:start + len(text)] != text:
            raise DataError(f"answer {text!r} does not match the context at character {start} (found "
                            f"{context[start:start + len(text)]!r})", path=origin)
        spans.append((start, start + len(text)))
    return spans


class QuestionAnsweringTask(Task):
    """Start/end span extraction with SQuAD exact match and F1; ``predict`` gives the answer text, its character
    span in the context and a probability."""

    label_key = "answers"

    def __init__(self, backbone: Backbone, *, label_names: Sequence[str] = tuple(LABEL_NAMES), doc_stride: int = 32,
                 max_question_tokens: int = 48, max_answer_tokens: int = 30, allow_no_answer: bool = False,
                 no_answer_threshold: float = 0.0, dropout: float = 0.1, question_key: str = "question",
                 context_key: str = "context", answers_key: str = "answers") -> None:
        if list(label_names) != LABEL_NAMES:
            raise ConfigError(f"question-answering predicts {LABEL_NAMES} logits; its label names are fixed "
                              f"(got {list(label_names)}); drop the recipe's labels:")
        if doc_stride < 0 or max_question_tokens < 1 or max_answer_tokens < 1:
            raise ConfigError("doc_stride must be ≥ 0, max_question_tokens and max_answer_tokens ≥ 1")
        head = SpanHead(backbone.feature_dim, dropout=dropout)
        super().__init__(backbone, head, label_names=LABEL_NAMES, doc_stride=doc_stride,
                         max_question_tokens=max_question_tokens, max_answer_tokens=max_answer_tokens,
                         allow_no_answer=allow_no_answer, no_answer_threshold=no_answer_threshold, dropout=dropout,
                         question_key=question_key, context_key=context_key, answers_key=answers_key)
        self.max_answer_tokens = max_answer_tokens
        self.allow_no_answer = allow_no_answer
        self.no_answer_threshold = float(no_answer_threshold)
        self._preprocessor = backbone.preprocessor.for_question_answering(
            doc_stride=doc_stride, max_question_tokens=max_question_tokens, question_key=question_key,
            context_key=context_key)
        self._keys = {"question_key": question_key, "context_key": context_key, "answers_key": answers_key}
        self._scores = SquadScores()

    @classmethod
    def labels_from_data(cls, source: DataSource, **options: Any) -> list[str]:
        """Always ``["start", "end"]`` (the head's two logits per token); the data has answers, not classes."""
        return list(LABEL_NAMES)

    def unknown_labels(self, source: DataSource) -> list[str]:
        return []

    def data_pipeline(self, *, training: bool) -> QuestionAnsweringPipeline:
        return QuestionAnsweringPipeline(self._preprocessor, allow_no_answer=self.allow_no_answer, **self._keys)

    def forward(self, batch: Batch) -> StepOutput:
        logits = self.head(self.backbone(batch["inputs"]))
        if "start_positions" not in batch:
            return StepOutput(loss=logits.sum() * 0.0, outputs=logits)
        start, end = logits.unbind(-1)
        loss = (F.cross_entropy(start, batch["start_positions"]) + F.cross_entropy(end, batch["end_positions"])) / 2
        return StepOutput(loss=loss, outputs=logits)

    def decode(self, logits: torch.Tensor, meta: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Per question: the best span over its windows (``text``, ``start``/``end`` characters, ``score`` = start ×
        end probability in its window) and the no-answer ``margin`` (null score − best span score)."""
        logits = logits.detach().float().cpu()
        start, end = logits[..., 0], logits[..., 1]
        context_mask = meta["context_mask"].bool()
        best, first, last = best_spans(start, end, context_mask, max_answer_tokens=self.max_answer_tokens)
        null = start[:, 0] + end[:, 0]
        allowed = context_mask.clone()
        allowed[:, 0] = True
        low = torch.finfo(torch.float32).min
        p_start = torch.softmax(start.masked_fill(~allowed, low), dim=-1)
        p_end = torch.softmax(end.masked_fill(~allowed, low), dim=-1)
        owner = meta["window_example"].tolist()
        results = []
        for row, context in enumerate(meta["contexts"]):
            windows = [w for w, example in enumerate(owner) if example == row]
            w = max(windows, key=lambda k: float(best[k]))
            i, j = int(first[w]), int(last[w])
            found = bool(torch.isfinite(best[w]))
            a, b = (int(meta["offsets"][w, i, 0]), int(meta["offsets"][w, j, 1])) if found else (0, 0)
            null_window = min(windows, key=lambda k: float(null[k]))
            margin = float(null[null_window] - best[w]) if found else float("inf")
            results.append({"text": context[a:b], "start": a, "end": b,
                            "score": float(p_start[w, i] * p_end[w, j]) if found else 0.0, "margin": margin,
                            "no_answer_score": float(p_start[null_window, 0] * p_end[null_window, 0])})
        return results

    def _answer(self, span: Mapping[str, Any]) -> str:
        no_answer = self.allow_no_answer and span["margin"] > self.no_answer_threshold
        return "" if no_answer else span["text"]

    def update_metrics(self, batch: Batch, output: StepOutput) -> None:
        for span, answers in zip(self.decode(output.outputs, batch["meta"]), batch["meta"]["answers"], strict=True):
            margin = span["margin"] if self.allow_no_answer else float("-inf")
            self._scores.add(answers, span["text"], self._answer(span), margin)

    def _gathered(self) -> list[QuestionScore]:
        """Every rank's questions (this rank's alone without torch.distributed): scores are not averages of ranks."""
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
            return self._scores.questions
        shards: list[Any] = [None] * dist.get_world_size()
        dist.all_gather_object(shards, self._scores.questions)
        return [question for shard in shards for question in shard]

    def compute_metrics(self) -> dict[str, float]:
        """SQuAD ``exact`` and ``f1`` (with unanswerable questions also the has/no-answer splits and the best
        no-answer threshold); a collective under torch.distributed, so every rank must call it."""
        return SquadScores(list(self._gathered())).compute()

    def reset_metrics(self) -> None:
        self._scores = SquadScores()

    @torch.no_grad()
    def predict(self, batch: Batch) -> list[dict[str, Any]]:
        """Per question: ``answer`` (``""`` for no answer), its ``start``/``end`` characters in the context (``None``
        for no answer), ``score`` (start × end probability; for no answer, the null probability) and, with
        ``allow_no_answer``, ``no_answer_margin``."""
        logits = self.head(self.backbone(batch["inputs"]))
        results = []
        for span in self.decode(logits, batch["meta"]):
            answer = self._answer(span)
            result: dict[str, Any] = {"answer": answer, "start": span["start"] if answer else None,
                                      "end": span["end"] if answer else None,
                                      "score": span["score"] if answer else span["no_answer_score"]}
            if self.allow_no_answer:
                result["no_answer_margin"] = span["margin"]
            results.append(result)
        return results

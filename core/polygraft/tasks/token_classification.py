"""Token classification (named entities, BIO/IOB2 tags) from sequence features.

Modality-free: the head reads ``Features.sequence`` and ``Features.mask``. Raw examples are pre-split words
``{"tokens": [...], "tags": [...]}`` (or ``{"text": ...}`` to predict). The backbone's preprocessor must give
``word_ids`` per token (the word each token belongs to, -1 for special tokens and padding) and, for raw text,
character ``offsets``, in ``batch["meta"]`` (its ``collate_meta``); the text plugin's tokenizer does. Each word's tag is learned and predicted on its first
sub-token; other sub-tokens get label -100 (ignored by the loss).

Metrics are entity-level precision / recall / F1 with seqeval (micro over entities, IOB2), token accuracy and
F1 per entity type. Validation keeps only the decoded tag sequences (strings), never the logits; under
torch.distributed they are gathered from every rank (``all_gather_object``) before seqeval scores them.

Example:
    >>> import polygraft
    >>> from polygraft.tasks.token_classification import spans_from_tags
    >>> spans_from_tags(["B-PER", "I-PER", "O", "B-LOC"])
    [('PER', 0, 1), ('LOC', 3, 3)]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from polygraft.errors import DataError, IncompatibleComponentsError
from polygraft.features import Batch, Features
from polygraft.interfaces.backbone import Backbone
from polygraft.interfaces.head import Head
from polygraft.interfaces.pipeline import DataPipeline
from polygraft.interfaces.preprocessor import Preprocessor
from polygraft.interfaces.task import LabelEncoder, Task
from polygraft.interfaces.training_module import StepOutput
from polygraft.options import check_fraction

IGNORE = -100


def spans_from_tags(tags: Sequence[str]) -> list[tuple[str, int, int]]:
    """Entities ``(type, first_word, last_word)`` (inclusive) in a BIO/IOB2 tag sequence, as seqeval reads them."""
    from seqeval.metrics.sequence_labeling import get_entities

    return [(kind, int(start), int(end)) for kind, start, end in get_entities(list(tags))]


class TokenClassificationHead(Head):
    """Dropout + linear layer on every position of the sequence features."""


    def __init__(self, in_features: int, num_tags: int, *, dropout: float = 0.1) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.linear = nn.Linear(in_features, num_tags)

    def forward(self, features: Features) -> torch.Tensor:
        if features.sequence is None:
            raise ValueError("token classification needs sequence features; this backbone gave none")
        return self.linear(self.dropout(features.sequence))


class TokenClassificationPipeline(DataPipeline):
    """Backbone preprocessing of the words plus tag ids aligned to first sub-tokens."""

    random_prepare = False

    def __init__(self, preprocessor: Preprocessor, label_names: Sequence[str], *, words_key: str = "tokens",
                 tags_key: str = "tags", label_all_subtokens: bool = False) -> None:
        self.preprocessor = preprocessor
        self.encode = LabelEncoder(label_names)
        self.label_names = list(label_names)
        self.words_key = words_key
        self.tags_key = tags_key
        self.label_all_subtokens = label_all_subtokens

    def prepare(self, example: Mapping[str, Any]) -> dict[str, Any]:
        inputs = self.preprocessor(example)
        if "word_ids" not in inputs:
            raise DataError(f"the backbone's preprocessor ({type(self.preprocessor).__name__}) gives no word_ids; "
                            "token classification needs a backbone that maps tokens to words",
                            path=example.get("_origin"))
        item: dict[str, Any] = {"inputs": inputs}
        if self.words_key in example:
            item["words"] = list(example[self.words_key])
        elif isinstance(example.get(self.preprocessor.input_key), str):
            item["text"] = example[self.preprocessor.input_key]
        if self.tags_key in example:
            words, tags = example.get(self.words_key), example[self.tags_key]
            if words is None or len(words) != len(tags):
                raise DataError(f"{len(tags)} tags for {len(words or [])} words; give one tag per word",
                                path=example.get("_origin"))
            ids = [self.encode(tag, example) for tag in tags]
            labels, previous = [], None
            for word in inputs["word_ids"]:
                if word < 0:
                    labels.append(IGNORE)
                elif word != previous:
                    labels.append(ids[word])
                else:
                    labels.append(self._inside(ids[word]) if self.label_all_subtokens else IGNORE)
                previous = word
            item["labels"] = labels
        return item

    def _inside(self, tag_id: int) -> int:
        tag = self.label_names[tag_id]
        if tag.startswith("B-") and f"I-{tag[2:]}" in self.encode.ids:
            return self.encode.ids[f"I-{tag[2:]}"]
        return tag_id

    def collate(self, items: Sequence[Mapping[str, Any]]) -> Batch:
        batch = self.collate_inputs([item["inputs"] for item in items])
        for key, batch_key in (("words", "words"), ("text", "texts")):
            if items and all(key in item for item in items):
                batch["meta"][batch_key] = [item[key] for item in items]
        if items and "labels" in items[0]:
            length = batch["meta"]["word_ids"].shape[1]
            labels = torch.full((len(items), length), IGNORE, dtype=torch.long)
            for row, item in enumerate(items):
                labels[row, : len(item["labels"])] = torch.as_tensor(item["labels"], dtype=torch.long)
            batch["labels"] = labels
        return batch


class TokenClassificationTask(Task):
    """Cross-entropy over first sub-tokens; entity-level metrics with seqeval; entity spans as predictions."""

    label_key = "tags"

    def __init__(self, backbone: Backbone, *, label_names: Sequence[str], dropout: float = 0.1,
                 label_all_subtokens: bool = False, words_key: str = "tokens", tags_key: str = "tags") -> None:
        check_fraction(dropout, name="dropout", what="task 'token-classification'")
        try:
            import seqeval  # noqa: F401
        except ImportError as exc:  # pragma: no cover - make set-up installs the extra
            raise IncompatibleComponentsError("token-classification needs seqeval: pip install 'polygraft[ner]'") from exc
        head = TokenClassificationHead(backbone.feature_dim, len(label_names), dropout=dropout)
        super().__init__(backbone, head, label_names=label_names)
        self.label_all_subtokens = label_all_subtokens
        self.words_key = words_key
        self.tags_key = tags_key
        self._gold: list[list[str]] = []
        self._pred: list[list[str]] = []

    def data_pipeline(self, *, training: bool) -> TokenClassificationPipeline:
        return TokenClassificationPipeline(self.backbone.preprocessor, self.label_names, words_key=self.words_key,
                                           tags_key=self.tags_key, label_all_subtokens=self.label_all_subtokens)

    def forward(self, batch: Batch) -> StepOutput:
        logits = self.head(self.backbone(batch["inputs"]))
        labels = batch["labels"]
        loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), labels.reshape(-1),
                               ignore_index=IGNORE)
        return StepOutput(loss=loss, outputs=logits)

    def _word_predictions(self, logits: torch.Tensor, word_ids: torch.Tensor) -> list[list[tuple[int, float]]]:
        """Per example, per word: (tag id, probability) read at the word's first sub-token."""
        probs = torch.softmax(logits.detach().float(), dim=-1).cpu()
        best_p, best = probs.max(dim=-1)
        word_ids = word_ids.cpu()
        results = []
        for row in range(word_ids.shape[0]):
            words: dict[int, tuple[int, float]] = {}
            for pos, word in enumerate(word_ids[row].tolist()):
                if word >= 0 and word not in words:
                    words[word] = (int(best[row, pos]), float(best_p[row, pos]))
            results.append([words[w] for w in sorted(words)])
        return results

    def update_metrics(self, batch: Batch, output: StepOutput) -> None:
        labels = batch["labels"].cpu()
        predicted = output.outputs.detach().argmax(dim=-1).cpu()
        for row in range(labels.shape[0]):
            keep = labels[row] != IGNORE
            self._gold.append([self.label_names[i] for i in labels[row][keep].tolist()])
            self._pred.append([self.label_names[i] for i in predicted[row][keep].tolist()])

    def _gathered(self) -> tuple[list[list[str]], list[list[str]]]:
        """Gold and predicted tag sequences of every rank (this rank's alone when
        torch.distributed is not initialised). Under DDP each rank validated a shard, so seqeval must see all."""
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
            return self._gold, self._pred
        shards: list[Any] = [None] * dist.get_world_size()
        dist.all_gather_object(shards, (self._gold, self._pred))
        gold = [seq for shard in shards for seq in shard[0]]
        pred = [seq for shard in shards for seq in shard[1]]
        return gold, pred

    def compute_metrics(self) -> dict[str, float]:
        """Entity P/R/F1 (seqeval, strict IOB2), token accuracy, per-type F1; over all ranks under DDP.

        Every rank must call it (it is a collective when torch.distributed is initialised); all get the same.
        """
        from seqeval.metrics import classification_report
        from seqeval.scheme import IOB2

        gold, pred = self._gathered()
        if not gold:
            return {}
        tokens = sum(len(seq) for seq in gold)
        correct = sum(g == p for gs, ps in zip(gold, pred) for g, p in zip(gs, ps))
        report = classification_report(gold, pred, mode="strict", scheme=IOB2, output_dict=True,
                                       zero_division=0)
        micro = report["micro avg"]
        metrics = {"precision": float(micro["precision"]), "recall": float(micro["recall"]),
                   "f1": float(micro["f1-score"]), "accuracy": correct / max(tokens, 1)}
        for name, row in report.items():
            if name not in ("micro avg", "macro avg", "weighted avg") and isinstance(row, Mapping):
                metrics[f"f1_{name}"] = float(row["f1-score"])
        return metrics

    def entity_report(self) -> str:
        """seqeval's per-entity text report of the current metric state."""
        from seqeval.metrics import classification_report
        from seqeval.scheme import IOB2

        return classification_report(self._gold, self._pred, mode="strict", scheme=IOB2, zero_division=0)

    def reset_metrics(self) -> None:
        self._gold, self._pred = [], []

    @torch.no_grad()
    def predict(self, batch: Batch) -> list[dict[str, Any]]:
        """Per example: word tags and entities ``{type, start, end, text, score, words}``.

        ``start``/``end`` are character offsets into the raw text (``end`` exclusive) when the input was text;
        for pre-split words, ``words`` gives the first and last word index and ``text`` joins those words.
        """
        return self.predictions_from_outputs(self.export_outputs(batch["inputs"]), batch)

    def export_outputs(self, inputs: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        """``{"logits": (B, tokens, tags)}``; words and entities come from them with the batch's ``meta``."""
        return {"logits": self.head(self.backbone(inputs))}

    def predictions_from_outputs(self, outputs: Mapping[str, Any], batch: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Word tags read at each word's first sub-token, then entity spans (see :meth:`predict`)."""
        meta = batch["meta"]
        logits = torch.as_tensor(outputs["logits"])
        word_ids = meta["word_ids"]
        offsets = meta.get("offsets")
        texts, split_words = meta.get("texts"), meta.get("words")
        results = []
        for row, words in enumerate(self._word_predictions(logits, word_ids)):
            tags = [self.label_names[tag] for tag, _ in words]
            entities = []
            for kind, first, last in spans_from_tags(tags):
                entity: dict[str, Any] = {"type": kind, "words": [first, last],
                                          "score": sum(p for _, p in words[first:last + 1]) / (last - first + 1)}
                if split_words is not None:
                    entity["text"] = " ".join(split_words[row][first:last + 1])
                elif offsets is not None and texts is not None:
                    ids = word_ids[row].tolist()
                    positions = [pos for pos, w in enumerate(ids) if first <= w <= last]
                    entity["start"] = int(offsets[row, positions[0], 0])
                    entity["end"] = int(offsets[row, positions[-1], 1])
                    entity["text"] = texts[row][entity["start"]:entity["end"]]
                entities.append(entity)
            results.append({"tags": tags, "entities": entities})
        return results

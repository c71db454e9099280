"""CTC recognition: a character sequence per input from sequence features (speech recognition, or any sequence).

Modality-free: the head reads ``Features.sequence`` and ``Features.mask`` (frames that are real), so a wav2vec2,
a Whisper encoder or any other backbone that yields sequences can transcribe. Raw examples carry a
``transcript`` (a string). The vocabulary is built from the training transcripts (:meth:`CTCTask.labels_from_data`):
``<blank>`` (index 0, CTC's blank), ``<unk>``, then every character seen, sorted. It is saved with the model as
its label names. A transcript character outside the vocabulary (in val/test data) is mapped to ``<unk>`` for
the loss and counted (``{stage}/unknown_characters``); the reference text used for the error rates is left as
written, so such characters count as errors.

Decoding is greedy (best class per frame, repeats merged, blanks dropped) or, with ``decoder: beam``, a
lexicon-free beam search (torchaudio's flashlight decoder; ``pip install 'polygraft[ctc]'``). Metrics are word
and character error rates from torchmetrics (``wer``, ``cer``), accumulated batch by batch and reduced across
processes.

Example:
    >>> import polygraft
    >>> from polygraft.interfaces import ListSource
    >>> from polygraft.tasks.ctc import CTCTask
    >>> CTCTask.labels_from_data(ListSource([{"transcript": "one two"}]))
    ['<blank>', '<unk>', ' ', 'e', 'n', 'o', 't', 'w']
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torchmetrics
from torch import nn
from torch.nn import functional as F

from polygraft.errors import ConfigError, DataError, IncompatibleComponentsError
from polygraft.features import Batch, Features
from polygraft.interfaces.backbone import Backbone
from polygraft.interfaces.datasource import DataSource
from polygraft.interfaces.head import Head
from polygraft.interfaces.pipeline import DataPipeline
from polygraft.interfaces.preprocessor import Preprocessor
from polygraft.interfaces.task import Task
from polygraft.interfaces.training_module import StepOutput
from polygraft.options import check_fraction

BLANK, UNKNOWN = "<blank>", "<unk>"
DECODERS = ("greedy", "beam")


def normalise(text: str, *, lowercase: bool) -> str:
    """Collapse runs of whitespace (and lowercase when asked): what both vocabulary and references see."""
    text = " ".join(str(text).split())
    return text.lower() if lowercase else text


def greedy_decode(log_probs: torch.Tensor, lengths: torch.Tensor, label_names: Sequence[str]) -> list[str]:
    """Best class per frame, repeats merged, blanks (index 0) dropped; ``log_probs`` is ``(B, T, V)``."""
    best = log_probs.argmax(dim=-1).cpu()
    texts = []
    for row, length in zip(best, lengths.cpu().tolist()):
        ids = torch.unique_consecutive(row[: int(length)])
        text = "".join(label_names[i] for i in ids.tolist() if i != 0 and label_names[i] != UNKNOWN)
        texts.append(" ".join(text.split()))  # the same whitespace rule as the references
    return texts


class CTCHead(Head):
    """Dropout + linear layer from each frame to the vocabulary (blank first)."""

    def __init__(self, in_features: int, vocabulary_size: int, *, dropout: float = 0.1) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.linear = nn.Linear(in_features, vocabulary_size)

    def forward(self, features: Features) -> tuple[torch.Tensor, torch.Tensor]:
        """``(log_probs (B, T, V) in float32, frame lengths (B,))``."""
        if features.sequence is None:
            raise IncompatibleComponentsError("ctc needs sequence features; this backbone gave none")
        logits = self.linear(self.dropout(features.sequence)).float()
        batch, frames = logits.shape[:2]
        if features.mask is None:
            lengths = torch.full((batch,), frames, dtype=torch.long, device=logits.device)
        else:
            lengths = features.mask.long().sum(dim=1)
        return F.log_softmax(logits, dim=-1), lengths


class CTCPipeline(DataPipeline):
    """Backbone preprocessing plus the transcript's character ids (unknown characters → ``<unk>``, counted)."""

    random_prepare = False

    def __init__(self, preprocessor: Preprocessor, label_names: Sequence[str], *, transcript_key: str,
                 lowercase: bool) -> None:
        self.preprocessor = preprocessor
        self.ids = {name: index for index, name in enumerate(label_names)}
        self.transcript_key = transcript_key
        self.lowercase = lowercase

    def prepare(self, example: Mapping[str, Any]) -> dict[str, Any]:
        item: dict[str, Any] = {"inputs": self.preprocessor(example)}
        if self.transcript_key in example:
            text = example[self.transcript_key]
            if not isinstance(text, str):
                raise DataError(f"{self.transcript_key!r} must be a string, got {type(text).__name__}",
                                path=example.get("_origin"))
            text = normalise(text, lowercase=self.lowercase)
            if not text:
                raise DataError(f"empty {self.transcript_key!r}: CTC needs a transcript to learn from",
                                path=example.get("_origin"))
            unknown = self.ids[UNKNOWN]
            item["target"] = [self.ids.get(char, unknown) for char in text]
            item["unknown"] = sum(char not in self.ids for char in text)
            item["transcript"] = text
        return item

    def collate(self, items: Sequence[Mapping[str, Any]]) -> Batch:
        batch = self.collate_inputs([item["inputs"] for item in items])
        if items and "target" in items[0]:
            batch["targets"] = torch.tensor([i for item in items for i in item["target"]], dtype=torch.long)
            batch["target_lengths"] = torch.tensor([len(item["target"]) for item in items], dtype=torch.long)
            batch["meta"]["transcripts"] = [item["transcript"] for item in items]
            batch["meta"]["unknown_characters"] = torch.tensor([item["unknown"] for item in items])
        return batch


class CTCTask(Task):
    """Connectionist temporal classification over sequence features; WER and CER.

    Options:
        dropout: before the output layer (default 0.1).
        transcript_key: the raw example key holding the text (default ``transcript``).
        lowercase: lowercase transcripts before building the vocabulary and scoring (default true).
        decoder: ``greedy`` (default) or ``beam`` (lexicon-free beam search, ``beam_size`` wide).
    """

    label_key = "transcript"

    def __init__(self, backbone: Backbone, *, label_names: Sequence[str], dropout: float = 0.1,
                 transcript_key: str = "transcript", lowercase: bool = True, decoder: str = "greedy",
                 beam_size: int = 16) -> None:
        check_fraction(dropout, name="dropout", what="task 'ctc'")
        if list(label_names[:2]) != [BLANK, UNKNOWN] or len(label_names) < 3:
            raise ConfigError(f"ctc label names must start with {BLANK!r}, {UNKNOWN!r} followed by the characters; "
                              f"got {list(label_names)[:5]}... (let the task build them from the training data)")
        if decoder not in DECODERS:
            raise ConfigError(f"ctc: decoder must be one of {DECODERS}, got {decoder!r}")
        head = CTCHead(backbone.feature_dim, len(label_names), dropout=dropout)
        super().__init__(backbone, head, label_names=label_names)
        self.transcript_key, self.lowercase = transcript_key, lowercase
        self.decoder, self.beam_size = decoder, beam_size
        self._beam: Any = None
        self.metrics = torchmetrics.MetricCollection(
            {"wer": torchmetrics.text.WordErrorRate(), "cer": torchmetrics.text.CharErrorRate()},  # type: ignore[attr-defined]
            compute_groups=False)
        self.unknown = torchmetrics.SumMetric()

    @classmethod
    def labels_from_data(cls, source: DataSource, *, transcript_key: str = "transcript", lowercase: bool = True,
                         **options: Any) -> list[str]:
        """``<blank>``, ``<unk>``, then every character of the training transcripts, sorted."""
        characters: set[str] = set()
        for index in range(len(source)):
            example = source[index]
            if transcript_key not in example:
                raise DataError(f"example {index} has no {transcript_key!r}; set task_options.transcript_key",
                                path=example.get("_origin"))
            characters.update(normalise(example[transcript_key], lowercase=lowercase))
        if not characters:
            raise DataError("the training transcripts are empty: CTC has nothing to learn", path=source.name)
        return [BLANK, UNKNOWN, *sorted(characters)]

    def unknown_labels(self, source: DataSource) -> list[str]:
        return []  # characters outside the vocabulary are mapped to <unk> and counted, not refused

    def data_pipeline(self, *, training: bool) -> CTCPipeline:
        return CTCPipeline(self.backbone.preprocessor, self.label_names, transcript_key=self.transcript_key,
                           lowercase=self.lowercase)

    def forward(self, batch: Batch) -> StepOutput:
        log_probs, lengths = self.head(self.backbone(batch["inputs"]))
        if "targets" not in batch:
            raise DataError("a ctc batch needs transcripts to compute a loss; use predict() instead")
        too_long = batch["target_lengths"].to(lengths.device) > lengths
        if bool(too_long.any()):
            raise DataError(f"a transcript has more characters than the model has frames ({too_long.sum()} in this "
                            "batch); CTC cannot align it. Use shorter transcripts or a backbone with more frames "
                            "per second")
        loss = F.ctc_loss(log_probs.transpose(0, 1), batch["targets"], lengths, batch["target_lengths"],
                          blank=0, reduction="mean", zero_infinity=True)
        return StepOutput(loss=loss, outputs={"log_probs": log_probs.detach(), "lengths": lengths})

    def decode(self, log_probs: torch.Tensor, lengths: torch.Tensor) -> list[str]:
        """Texts from ``(B, T, V)`` log-probabilities with the configured decoder."""
        if self.decoder == "greedy":
            return greedy_decode(log_probs, lengths, self.label_names)
        results = self._beam_decoder()(log_probs.float().cpu().contiguous(), lengths.cpu().int())
        texts = []
        for hypotheses in results:  # flashlight's tokens are already collapsed, blanks removed
            tokens = hypotheses[0].tokens.tolist() if hypotheses else []
            text = "".join(self.label_names[i] for i in tokens if self.label_names[i] not in (BLANK, UNKNOWN))
            texts.append(" ".join(text.split()))
        return texts

    def _beam_decoder(self) -> Any:
        if self._beam is None:
            try:
                from torchaudio.models.decoder import ctc_decoder
            except ImportError as exc:
                raise IncompatibleComponentsError("decoder: beam needs flashlight-text: pip install "
                                                  "'polygraft[ctc]'") from exc
            tokens = ["|" if name == " " else name for name in self.label_names]
            silence = "|" if "|" in tokens else UNKNOWN
            self._beam = ctc_decoder(lexicon=None, tokens=tokens, blank_token=BLANK, sil_token=silence,
                                     beam_size=self.beam_size, nbest=1, lm=None)
        return self._beam

    def update_metrics(self, batch: Batch, output: StepOutput) -> None:
        predictions = self.decode(output.outputs["log_probs"], output.outputs["lengths"])
        self.metrics.update(predictions, batch["meta"]["transcripts"])
        self.unknown.update(batch["meta"]["unknown_characters"].sum().to(self.unknown.device, torch.float32))

    def compute_metrics(self) -> dict[str, float]:
        metrics = {name: float(value) for name, value in self.metrics.compute().items()}
        metrics["unknown_characters"] = float(self.unknown.compute())
        return metrics

    def reset_metrics(self) -> None:
        self.metrics.reset()
        self.unknown.reset()

    @torch.no_grad()
    def predict(self, batch: Batch) -> list[dict[str, Any]]:
        """Per example: ``{"transcript": text, "confidence": mean best-frame probability}``."""
        return self.predictions_from_outputs(self.export_outputs(batch["inputs"]), batch)

    def export_outputs(self, inputs: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        """``{"log_probs": (B, frames, vocabulary), "lengths": (B,) real frames}``; the vocabulary is the label names
        (``<blank>`` first)."""
        log_probs, lengths = self.head(self.backbone(inputs))
        return {"log_probs": log_probs, "lengths": lengths}

    def predictions_from_outputs(self, outputs: Mapping[str, Any], batch: Mapping[str, Any]) -> list[dict[str, Any]]:
        log_probs = torch.as_tensor(outputs["log_probs"]).float()
        lengths = torch.as_tensor(outputs["lengths"]).long()
        texts = self.decode(log_probs, lengths)
        best = log_probs.max(dim=-1).values.exp()
        mask = torch.arange(log_probs.shape[1], device=lengths.device)[None, :] < lengths[:, None]
        confidence = (best * mask).sum(1) / lengths.clamp_min(1)
        return [{"transcript": text, "confidence": round(float(c), 4)} for text, c in zip(texts, confidence)]

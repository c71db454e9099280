"""Metric learning for open-set recognition and verification (faces, speakers, any identity): an embedding head
trained with ArcFace, CosFace or a contrastive loss (pytorch-metric-learning), evaluated on identities it never saw.

Training classifies the training identities through the margin loss; evaluation forgets the classifier and scores
every pair of examples by the cosine similarity of their embeddings: ROC-AUC, equal error rate, TAR@FAR=1e-2 and
rank-1 retrieval (see :mod:`polygraft.tasks.verification_metrics`). Each validation also chooses the score threshold
at its EER operating point; it is kept with the model (a buffer saved in ``model.safetensors``), so the test split
is scored at it (``test/far_at_threshold``, ``test/frr_at_threshold``) and ``polygraft predict RUN a.wav b.wav``
answers "same identity?" with it. ``val/loss`` is the contrastive pair loss over each batch's pairs, because
unseen identities have no row in the margin loss's classifier.

Raw examples carry the identity under ``label`` (``label_key`` picks another key): an image folder with one
sub-folder per person or speaker, a speech source labelled by voice. ``val``/``test`` identities must not occur in
training (``open_set: false`` allows it). An evaluation identity with a single example takes part in pairs as a
different identity only; it cannot be a rank-1 query and is counted (``single_example_identities``).

Example:
    >>> import polygraft
    >>> task = polygraft.create_task("metric-learning", backbone="toy", label_names=["ann", "bob", "cy"],
    ...                              backbone_options={"in_features": 2}, embedding_dim=8)
    >>> batch = task.collate([task.prepare_example({"x": [0.0, 1.0], "label": "bob"}),
    ...                       task.prepare_example({"x": [1.0, 0.0], "label": "cy"})])
    >>> _ = task.train()
    >>> float(task(batch).loss) > 0
    True
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import torchmetrics
from torch import nn
from torch.nn import functional as F

from polygraft.errors import ConfigError, DataError
from polygraft.features import Batch, Features, move_to_device
from polygraft.interfaces import Callback
from polygraft.interfaces.backbone import Backbone
from polygraft.interfaces.head import Head
from polygraft.interfaces.pipeline import DataPipeline
from polygraft.interfaces.preprocessor import Preprocessor
from polygraft.interfaces.task import Task
from polygraft.interfaces.training_module import StepOutput
from polygraft.tasks.verification_metrics import verification_metrics

LOSSES = ("arcface", "cosface", "contrastive")


def identity_key(name: str) -> int:
    """A stable 63-bit integer for an identity name (the same on every process, so ranks can gather them)."""
    return int.from_bytes(hashlib.sha1(name.encode("utf-8")).digest()[:8], "little") >> 1


def build_criterion(loss: str, num_classes: int, embedding_dim: int, *, margin: float | None,
                    scale: float | None) -> nn.Module:
    """pytorch-metric-learning's loss (ArcFace margin in degrees, CosFace margin in cosine units)."""
    try:
        from pytorch_metric_learning import distances, losses
    except ImportError as exc:  # pragma: no cover - make set-up installs it
        raise ConfigError("the metric-learning task needs pytorch-metric-learning: "
                          "pip install 'polygraft[metric-learning]'") from exc
    if loss not in LOSSES:
        raise ConfigError(f"metric-learning: loss must be one of {LOSSES}, got {loss!r}")
    tuning = {key: value for key, value in (("margin", margin), ("scale", scale)) if value is not None}
    if loss == "arcface":
        return losses.ArcFaceLoss(num_classes, embedding_dim, **tuning)
    if loss == "cosface":
        return losses.CosFaceLoss(num_classes, embedding_dim, **tuning)
    if scale is not None:
        raise ConfigError("metric-learning: scale belongs to arcface and cosface; the contrastive loss has none")
    return pair_loss(margin if margin is not None else 0.0, distances.CosineSimilarity())


def pair_loss(negative_margin: float, distance: Any = None) -> nn.Module:
    """Contrastive loss on cosine similarities: same-identity pairs pulled to 1, others pushed below the margin."""
    from pytorch_metric_learning import distances, losses

    return losses.ContrastiveLoss(pos_margin=1.0, neg_margin=negative_margin,
                                  distance=distance or distances.CosineSimilarity())


class EmbeddingHead(Head):
    """Dropout and a linear projection of the pooled features to ``embedding_dim``; the loss's class weights
    (``criterion``) live here too, so every strategy trains them with the head."""

    def __init__(self, in_features: int, embedding_dim: int, criterion: nn.Module, *, dropout: float = 0.1) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.projection = nn.Linear(in_features, embedding_dim)
        self.criterion = criterion

    def forward(self, features: Features) -> torch.Tensor:
        return self.projection(self.dropout(features.pool()))


class EmbeddingStore(torchmetrics.Metric):
    """Every evaluated embedding and identity key (gathered across processes): verification compares all pairs."""

    full_state_update = False

    def __init__(self) -> None:
        super().__init__()
        self.add_state("embeddings", default=[], dist_reduce_fx="cat")
        self.add_state("identities", default=[], dist_reduce_fx="cat")

    def update(self, embeddings: torch.Tensor, identities: torch.Tensor) -> None:
        self.embeddings.append(embeddings.detach().float())
        self.identities.append(identities.detach().long())

    def compute(self) -> tuple[torch.Tensor, torch.Tensor]:
        from torchmetrics.utilities import dim_zero_cat

        return dim_zero_cat(self.embeddings), dim_zero_cat(self.identities)  # type: ignore[arg-type]


class MetricLearningPipeline(DataPipeline):
    """Backbone preprocessing plus the identity: its training class (-1 for an unseen one) and its stable key."""

    random_prepare = False

    def __init__(self, preprocessor: Preprocessor, label_names: Sequence[str], label_key: str = "label") -> None:
        self.preprocessor = preprocessor
        self.ids = {name: index for index, name in enumerate(label_names)}
        self.label_key = label_key

    def prepare(self, example: Mapping[str, Any]) -> dict[str, Any]:
        item: dict[str, Any] = {"inputs": self.preprocessor(example)}
        if self.label_key in example:
            name = str(example[self.label_key])
            item.update(identity=name, label=self.ids.get(name, -1), key=identity_key(name))
        return item

    def collate(self, items: Sequence[Mapping[str, Any]]) -> Batch:
        batch = self.collate_inputs([item["inputs"] for item in items])
        if items and "identity" in items[0]:
            batch["labels"] = torch.tensor([item["label"] for item in items], dtype=torch.long)
            batch["identity_keys"] = torch.tensor([item["key"] for item in items], dtype=torch.long)
            batch["meta"]["identities"] = [item["identity"] for item in items]
        return batch


class ChooseThreshold(Callback):
    """Lets validation (not test, not ``polygraft evaluate``) choose the task's verification threshold."""

    def __init__(self, task: MetricLearningTask) -> None:
        self.task = task

    def on_validation_start(self, trainer: Any) -> None:
        self.task.choosing_threshold = trainer.stage == "val"

    def on_validation_end(self, trainer: Any, metrics: dict[str, float]) -> None:
        self.task.choosing_threshold = False


class MetricLearningTask(Task):
    """Embeddings for open-set verification and retrieval, trained with a margin (or contrastive) loss."""

    def __init__(self, backbone: Backbone, *, label_names: Sequence[str], loss: str = "arcface",
                 embedding_dim: int = 128, margin: float | None = None, scale: float | None = None,
                 dropout: float = 0.1, far: float = 1e-2, open_set: bool = True, label_key: str = "label") -> None:
        if len(label_names) < 2:
            raise DataError(f"metric learning needs at least 2 training identities, got {list(label_names)}")
        if embedding_dim < 1 or not 0 < far < 1:
            raise ConfigError(f"metric-learning: embedding_dim must be ≥ 1 and far in (0, 1), got {embedding_dim}, "
                              f"{far}")
        criterion = build_criterion(loss, len(label_names), embedding_dim, margin=margin, scale=scale)
        head = EmbeddingHead(backbone.feature_dim, embedding_dim, criterion, dropout=dropout)
        super().__init__(backbone, head, label_names=label_names, loss=loss, embedding_dim=embedding_dim,
                         margin=margin, scale=scale, dropout=dropout, far=far, open_set=open_set, label_key=label_key)
        self.loss_name, self.far, self.open_set, self.label_key = loss, far, open_set, label_key
        self.eval_loss = pair_loss(0.0)
        self.store = EmbeddingStore()
        self.threshold: torch.Tensor
        self.register_buffer("threshold", torch.tensor(float("nan"), dtype=torch.float64))
        self.choosing_threshold = False

    def callbacks(self) -> list[Callback]:
        return [ChooseThreshold(self)]

    def unknown_labels(self, source: Any) -> list[str]:
        """Open set: evaluation identities must be new. Raises DataError naming the shared ones (``open_set``)."""
        names = getattr(source, "label_names", None)
        if names is None:
            examples = getattr(source, "examples", None)
            names = sorted({str(e[self.label_key]) for e in examples if self.label_key in e}) if examples else []
        shared = sorted(set(map(str, names)) & set(self.label_names))
        if self.open_set and shared:
            raise DataError(f"{source.name or 'an evaluation split'} shares {len(shared)} identities with training "
                            f"({shared[:10]}): an open-set evaluation needs identities the model never saw. Hold "
                            "them out of training, or set task_options.open_set=false for a closed-set evaluation")
        return []

    def data_pipeline(self, *, training: bool) -> MetricLearningPipeline:
        return MetricLearningPipeline(self.backbone.preprocessor, self.label_names, self.label_key)

    def embed(self, inputs: Mapping[str, Any]) -> torch.Tensor:
        """Unnormalised embeddings ``(B, embedding_dim)``; scores are cosine similarities of them."""
        return self.head(self.backbone(inputs))

    def forward(self, batch: Batch) -> StepOutput:
        if "labels" not in batch:
            raise DataError("a metric-learning batch needs identities to compute a loss; use predict() instead")
        embeddings = self.embed(batch["inputs"]).float()
        labels = batch["labels"]
        if self.training:
            if bool((labels < 0).any()):
                raise DataError("a training example's identity is not among the training identities")
            loss = self.head.criterion(embeddings, labels)
        else:  # unseen identities have no classifier row: compare the batch's pairs instead
            loss = self.eval_loss(embeddings, batch["identity_keys"])
        return StepOutput(loss=loss, outputs=embeddings)

    def update_metrics(self, batch: Batch, output: StepOutput) -> None:
        self.store.update(output.outputs, batch["identity_keys"])

    def compute_metrics(self) -> dict[str, float]:
        embeddings, identities = self.store.compute()
        kept = float(self.threshold)
        threshold = "eer" if self.choosing_threshold else None if math.isnan(kept) else kept
        metrics = verification_metrics(embeddings, identities, far=self.far, threshold=threshold)
        if self.choosing_threshold:
            self.threshold.fill_(metrics["eer_threshold"])
        return {key: float(value) for key, value in metrics.items()}

    def reset_metrics(self) -> None:
        self.store.reset()

    @torch.no_grad()
    def predict(self, batch: Batch) -> list[dict[str, Any]]:
        """One L2-normalised embedding per example (what enrolment stores)."""
        embeddings = F.normalize(self.embed(batch["inputs"]).float(), dim=1)
        return [{"embedding": [round(float(v), 6) for v in row]} for row in embeddings]

    @torch.no_grad()
    def predict_examples(self, examples: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """One example: its embedding. Two or more: the first is the reference, and each other example gets
        ``{"input", "reference", "score", "threshold", "same_identity"}`` (cosine score ≥ the validation threshold)."""
        pipeline = self.data_pipeline(training=False)
        device = next(self.parameters()).device
        batch = pipeline.collate([pipeline.prepare(example) for example in examples])
        embeddings = F.normalize(self.embed(move_to_device(batch["inputs"], device)).float(), dim=1)
        if len(examples) == 1:
            return [{"embedding": [round(float(v), 6) for v in embeddings[0]]}]
        threshold = float(self.threshold)
        known = not math.isnan(threshold)
        reference = examples[0].get("_origin", "input 1")
        results = []
        for index in range(1, len(examples)):
            score = float(embeddings[0] @ embeddings[index])
            results.append({"input": examples[index].get("_origin", f"input {index + 1}"), "reference": reference,
                            "score": round(score, 6), "threshold": round(threshold, 6) if known else None,
                            "same_identity": bool(score >= threshold) if known else None})
        return results

    def export(self, directory: Path) -> dict[str, Any]:
        """The task section of ``polygraft.json``, with the chosen threshold shown for people (the model's buffer
        holds it)."""
        threshold = float(self.threshold)
        return {**super().export(directory), "verification": {
            "score": "cosine similarity of the embeddings", "threshold": None if math.isnan(threshold) else threshold,
            "chosen_on": "validation, at the equal-error-rate point"}}

"""SimCLR pretraining: two augmented views per image, a projection head, the NT-Xent loss.

The result is a backbone checkpoint (``PretrainingObjective.export``) that ``finetune`` accepts as ``weights:``;
the projection head is discarded, as in the paper.

Example:
    >>> import polygraft
    >>> from PIL import Image
    >>> objective = polygraft.create_objective("simclr", backbone="timm",
    ...     backbone_options={"model_name": "test_resnet", "image_size": 32})
    >>> pipe = objective.data_pipeline(training=True)
    >>> batch = pipe.collate([pipe.prepare({"image": Image.new("RGB", (40, 40), c)}) for c in ("red", "blue")])
    >>> float(objective(batch).loss) > 0
    True
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torchmetrics
from torch import nn
from torch.nn import functional as F

from polygraft.errors import IncompatibleComponentsError
from polygraft.features import Batch
from polygraft.interfaces import DataPipeline, StepOutput
from polygraft.interfaces.backbone import Backbone
from polygraft.interfaces.objective import PretrainingObjective
from polygraft.interfaces.preprocessor import Preprocessor

DEFAULT_AUGMENT = {"scale": (0.2, 1.0), "hflip": 0.5, "color_jitter": 0.4}


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalised-temperature cross entropy over 2N views; returns (loss, top-1 accuracy of the positive)."""
    z = F.normalize(torch.cat([z1, z2]).float(), dim=-1)
    n = z1.shape[0]
    logits = z @ z.t() / temperature
    logits.fill_diagonal_(float("-inf"))  # a view is never its own positive
    targets = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    loss = F.cross_entropy(logits, targets)
    accuracy = (logits.argmax(dim=-1) == targets).float().mean()
    return loss, accuracy


class TwoViewPipeline(DataPipeline):
    """Two independent augmentations of every image (timm's training transform)."""

    def __init__(self, preprocessor: Preprocessor, augment: Mapping[str, Any]) -> None:
        for_training = getattr(preprocessor, "for_training", None)
        if for_training is None:
            raise IncompatibleComponentsError(f"{type(preprocessor).__name__} cannot augment (no for_training())")
        self.preprocessor = for_training(**augment)

    def prepare(self, example: Mapping[str, Any]) -> dict[str, Any]:
        return {"view1": self.preprocessor(example), "view2": self.preprocessor(example)}

    def collate(self, items: Sequence[Mapping[str, Any]]) -> Batch:
        return {"view1": self.preprocessor.collate([item["view1"] for item in items]),
                "view2": self.preprocessor.collate([item["view2"] for item in items])}


class SimCLR(PretrainingObjective):
    """Contrastive pretraining of a pooled-feature backbone.

    Args:
        projection_dim: output size of the projection MLP.
        hidden_dim: its hidden size (default: the backbone's feature size).
        temperature: NT-Xent temperature.
        augment: timm training-transform options (``scale``, ``hflip``, ``color_jitter``, ``auto_augment``).
    """

    def __init__(self, backbone: Backbone, *, projection_dim: int = 128, hidden_dim: int | None = None,
                 temperature: float = 0.2, augment: Mapping[str, Any] | None = None) -> None:
        super().__init__()
        self.backbone = backbone
        hidden = hidden_dim or backbone.feature_dim
        self.projection = nn.Sequential(nn.Linear(backbone.feature_dim, hidden), nn.BatchNorm1d(hidden),
                                        nn.ReLU(inplace=True), nn.Linear(hidden, projection_dim))
        self.temperature = temperature
        self.augment = {**DEFAULT_AUGMENT, **dict(augment or {})}
        self.loss_metric = torchmetrics.MeanMetric()
        self.accuracy_metric = torchmetrics.MeanMetric()

    def data_pipeline(self, *, training: bool) -> TwoViewPipeline:
        return TwoViewPipeline(self.backbone.preprocessor, self.augment)

    def embed(self, inputs: Mapping[str, Any]) -> torch.Tensor:
        return self.projection(self.backbone(inputs).pool())

    def forward(self, batch: Batch) -> StepOutput:
        z1, z2 = self.embed(batch["view1"]), self.embed(batch["view2"])
        loss, accuracy = nt_xent(z1, z2, self.temperature)
        return StepOutput(loss=loss, outputs={"contrastive_accuracy": accuracy.detach()})

    def update_metrics(self, batch: Batch, output: StepOutput) -> None:
        weight = batch["view1"]["pixel_values"].shape[0]
        self.loss_metric.update(output.loss.detach().float(), weight)
        self.accuracy_metric.update(output.outputs["contrastive_accuracy"].float(), weight)

    def compute_metrics(self) -> dict[str, float]:
        return {"loss": float(self.loss_metric.compute()), "contrastive_accuracy": float(self.accuracy_metric.compute())}

    def reset_metrics(self) -> None:
        self.loss_metric.reset()
        self.accuracy_metric.reset()

    def predict(self, batch: Batch) -> list[dict[str, Any]]:
        with torch.no_grad():
            pooled = self.backbone(batch["view1"] if "view1" in batch else batch["inputs"]).pool()
        return [{"embedding": [float(v) for v in row]} for row in pooled]

"""Specs of core's modality-free tasks (import-free; the builtin plugin registers them)."""

from __future__ import annotations

from polygraft.specs import TaskSpec

TASK_SPECS: list[TaskSpec] = [
    TaskSpec(
        name="classification", factory="polygraft.tasks.classification:create_classification_task",
        consumes="pooled", target="class",
        description="One label per example from pooled features: accuracy, macro-F1, confusion matrix.",
    ),
    TaskSpec(
        name="token-classification",
        factory="polygraft.tasks.token_classification:create_token_classification_task",
        consumes="sequence", target="tags",
        description="One BIO tag per word from sequence features (NER): entity-level precision/recall/F1 "
                    "(seqeval), entity spans with character offsets.",
    ),
    TaskSpec(
        name="detection", factory="polygraft.tasks.detection:create_detection_task",
        consumes="maps", target="boxes",
        description="Boxes from multi-scale feature maps: torchvision FPN + FCOS head; COCO mAP@[.5:.95] and "
                    "mAP@.5 (torchmetrics, pycocotools).",
    ),
]

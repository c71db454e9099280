"""Pretraining objectives: train a backbone without labels; the result is a backbone checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from polygraft.interfaces.module import TrainingModule


class PretrainingObjective(TrainingModule):
    """Base class. Its ``export`` writes a backbone checkpoint that ``finetune`` accepts as ``weights:``."""

    def export(self, directory: Path) -> dict[str, Any]:
        from polygraft.model_io import backbone_config

        return {"kind": "backbone", "objective": self.spec_name, **backbone_config(self.backbone, directory)}

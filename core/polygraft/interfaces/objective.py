"""Pretraining objectives: train a backbone without labels; the result is a backbone checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from polygraft.interfaces.training_module import TrainingModule


class PretrainingObjective(TrainingModule):
    """Base class. The run's ``model/`` is a backbone checkpoint that ``finetune`` accepts as ``weights:``
    (its own heads, such as a projection or a quantiser, are not kept). An objective that can predict from the
    backbone alone (a language model with a tied output head) adds ``objective_options`` to :meth:`export`, and
    ``polygraft predict`` rebuilds it around the saved backbone with them."""

    def export(self, directory: Path) -> dict[str, Any]:
        return {"kind": "backbone", "objective": self.spec_name}

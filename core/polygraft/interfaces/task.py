"""The Task base class: a backbone, a head, a loss, metrics and decoding.

Example:
    >>> import polygraft
    >>> task = polygraft.create_task("classification", backbone="toy", label_names=["cat", "dog"],
    ...                              backbone_options={"in_features": 3})
    >>> task.num_classes
    2
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from polygraft.errors import DataError
from polygraft.interfaces.backbone import Backbone
from polygraft.interfaces.head import Head
from polygraft.interfaces.module import TrainingModule


class Task(TrainingModule):
    """A fine-tuning task over any backbone whose features its head can read."""

    def __init__(self, backbone: Backbone, head: Head, *, label_names: Sequence[str], **options: Any) -> None:
        super().__init__()
        if not label_names:
            raise DataError("a task needs at least one label name (got none)")
        if len(set(label_names)) != len(label_names):
            raise DataError(f"label names must be unique, got {list(label_names)}")
        self.backbone = backbone
        self.head = head
        self.label_names = [str(name) for name in label_names]
        self.options = dict(options)

    @property
    def num_classes(self) -> int:
        return len(self.label_names)

    def export(self, directory: Path) -> dict[str, Any]:
        from polygraft.model_io import backbone_config

        return {
            "kind": "task",
            "task": self.spec_name,
            "label_names": self.label_names,
            "options": self.options,
            **backbone_config(self.backbone, directory),
        }


class LabelEncoder:
    """Maps label names (or integer ids) to ids; an unknown label is an error naming its origin."""

    def __init__(self, label_names: Sequence[str]) -> None:
        self.label_names = list(label_names)
        self.ids = {name: index for index, name in enumerate(self.label_names)}

    def __call__(self, label: Any, example: Mapping[str, Any] | None = None) -> int:
        if isinstance(label, int) and not isinstance(label, bool) and 0 <= label < len(self.label_names):
            return label
        key = str(label)
        if key in self.ids:
            return self.ids[key]
        origin = (example or {}).get("_origin")
        raise DataError(
            f"label {label!r} was never seen in training; known labels: {self.label_names}",
            path=origin,
        )

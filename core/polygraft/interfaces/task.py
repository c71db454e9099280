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

from polygraft.errors import ConfigError, DataError
from polygraft.interfaces.backbone import Backbone
from polygraft.interfaces.datasource import DataSource, InMemorySource, SubsetSource
from polygraft.interfaces.head import Head
from polygraft.interfaces.training_module import TrainingModule


class Task(TrainingModule):
    """A fine-tuning task over any backbone whose features its head can read."""

    #: the task's options as it was built with them (recorded by the catalog's builder; saved in ``polygraft.json``
    #: and passed back to the factory by ``polygraft.load``)
    build_options: dict[str, Any]

    def __init__(self, backbone: Backbone, head: Head, *, label_names: Sequence[str], **options: Any) -> None:
        super().__init__()
        if not label_names:
            raise DataError("a task needs at least one label name (got none)")
        if len(set(label_names)) != len(label_names):
            raise DataError(f"label names must be unique, got {list(label_names)}")
        self.backbone = backbone
        self.head = head
        self.label_names = [str(name) for name in label_names]
        self.build_options = dict(options)  # a subclass may pass its options; else the builder records them

    @property
    def num_classes(self) -> int:
        return len(self.label_names)

    #: the raw example key holding the target (tasks with another target override it)
    label_key: str = "label"

    @property
    def options(self) -> dict[str, Any]:
        """The options this task was built with (``build_options``)."""
        return self.build_options

    def export(self, directory: Path) -> dict[str, Any]:
        return {"kind": "task", "task": self.spec_name, "label_names": self.label_names,
                "options": dict(self.build_options)}

    @classmethod
    def labels_from_data(cls, source: DataSource, *, label_key: str | None = None, **options: Any) -> list[str]:
        """The label names a recipe without ``labels:`` trains on: the source's ``label_names``, else every
        label its examples carry under the task's ``label_key`` (one label, or a list of them per example, as
        detection's boxes and NER's tags), sorted. Tasks with another kind of target override it (CTC)."""
        if source.label_names:
            return list(source.label_names)
        key = label_key or cls.label_key
        seen: set[str] = set()
        for index in range(len(source)):
            example = source[index]
            if key not in example:
                raise DataError(f"example {index} has no {key!r}; give the data a {key!r} or list the recipe's "
                                "labels:", path=example.get("_origin"))
            seen.update(_labels_of(example[key]))
        return sorted(seen)

    def unknown_labels(self, source: DataSource) -> list[str]:
        """Labels of ``source`` outside ``label_names``: from its ``label_names``, or (in-memory sources) its examples."""
        if source.label_names is not None:
            found = [str(name) for name in source.label_names]
        elif isinstance(source, InMemorySource):
            found = [name for example in source.examples if self.label_key in example
                     for name in _labels_of(example[self.label_key])]
        else:
            return []
        known = set(self.label_names)
        return sorted({name for name in found if name not in known})

    def label_origin(self, source: DataSource, label: str) -> str | None:
        """Where ``source`` first carries ``label`` (its ``_origin``, "file:line"), when its examples are in memory
        (also through subset views); ``None`` otherwise. Error messages name it."""
        examples: Any = source
        while isinstance(examples, SubsetSource) and not isinstance(examples, InMemorySource):
            examples = examples.parent
        if not isinstance(examples, InMemorySource):
            return None
        for example in examples.examples:
            if self.label_key in example and label in _labels_of(example[self.label_key]):
                origin = example.get("_origin")
                return str(origin) if origin else None
        return None

    def export_outputs(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        """ONNX export: the named tensors the exported graph returns for a batch's ``inputs`` (eval mode, no
        targets), e.g. ``{"logits": (B, C)}``. Batch first; everything after it is derived from the inputs, so
        the exporter traces this method. Tasks that export override it together with
        :meth:`predictions_from_outputs`."""
        from polygraft.errors import ExportError

        raise ExportError(f"task {self.spec_name or type(self).__name__!r} declares no export outputs: implement "
                          "Task.export_outputs (and predictions_from_outputs); see docs/writing-plugins.md, 'Export'")

    def predictions_from_outputs(self, outputs: Mapping[str, Any], batch: Mapping[str, Any]) -> list[dict[str, Any]]:
        """What :meth:`predict` returns, from :meth:`export_outputs`' tensors (PyTorch's or an ONNX runtime's,
        as torch tensors) and the batch's ``meta``: so a served ONNX model answers as the PyTorch one does."""
        from polygraft.errors import ExportError

        raise ExportError(f"task {self.spec_name or type(self).__name__!r} cannot decode exported outputs: "
                          "implement Task.predictions_from_outputs")

    def draw_predictions(self, example: Mapping[str, Any], prediction: Mapping[str, Any], path: str) -> str:
        """``polygraft predict RUN input --draw out.png``: render a prediction; tasks that can draw override it."""
        raise ConfigError(f"task {self.spec_name!r} cannot draw its predictions; drop --draw")


def _labels_of(value: Any) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list | tuple) else [str(value)]


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

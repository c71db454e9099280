"""What an exported graph reads and returns: a task's nested ``inputs`` flattened into named tensors with named
dynamic axes, and the module the exporter traces.

The backbone declares which axes vary (:meth:`~polygraft.interfaces.Backbone.export_input_axes`, nested like its
inputs, so a fusion backbone's ``{"text": {...}, "image": {...}}`` flattens to ``text.input_ids``,
``image.pixel_values``); the task declares the outputs (:meth:`~polygraft.interfaces.Task.export_outputs`). The
exporter itself knows no modality and no task.

Example:
    >>> import torch
    >>> from polygraft.export.graph import flatten_inputs, nest_inputs
    >>> flat = flatten_inputs({"text": {"input_ids": torch.ones(2, 3)}, "pixel_values": torch.ones(2, 3, 4, 4)})
    >>> [name for name, _ in flat]
    ['text.input_ids', 'pixel_values']
    >>> sorted(nest_inputs([path for path, _ in flatten_inputs({"a": {"b": torch.ones(1)}}, paths=True)],
    ...                    [torch.zeros(1)]))
    ['a']
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from polygraft.errors import ExportError

BATCH = "batch"
SEPARATOR = "."


def flatten_inputs(inputs: Mapping[str, Any], *, paths: bool = False,
                   prefix: tuple[str, ...] = ()) -> list[tuple[Any, torch.Tensor]]:
    """``(name, tensor)`` for every tensor of nested ``inputs`` in order (``(path tuple, tensor)`` with ``paths``);
    anything that is not a tensor or a mapping of them cannot enter a graph and is an :class:`ExportError`."""
    found: list[tuple[Any, torch.Tensor]] = []
    for key, value in inputs.items():
        path = (*prefix, str(key))
        if isinstance(value, torch.Tensor):
            found.append((path if paths else SEPARATOR.join(path), value))
        elif isinstance(value, Mapping):
            found.extend(flatten_inputs(value, paths=paths, prefix=path))
        else:
            raise ExportError(f"the backbone reads {SEPARATOR.join(path)!r} as a {type(value).__name__}; an exported "
                              "graph takes only tensors (nested in dicts): make the preprocessor's collate return "
                              "tensors for everything the backbone reads")
    return found


def nest_inputs(paths: Sequence[tuple[str, ...]], tensors: Sequence[torch.Tensor]) -> dict[str, Any]:
    """The nested inputs again from flat ``tensors`` and their ``paths``."""
    nested: dict[str, Any] = {}
    for path, tensor in zip(paths, tensors, strict=True):
        target = nested
        for key in path[:-1]:
            target = target.setdefault(key, {})
        target[path[-1]] = tensor
    return nested


def axes_of(declared: Mapping[str, Any], path: tuple[str, ...]) -> dict[int, str]:
    """The declared dynamic axes of the tensor at ``path`` (nested declaration), batch first."""
    value: Any = declared
    for key in path:
        value = value.get(key) if isinstance(value, Mapping) else None
        if value is None:
            return {0: BATCH}
    if not isinstance(value, Mapping) or not all(isinstance(k, int) and isinstance(v, str) for k, v in value.items()):
        raise ExportError(f"export_input_axes() must map {SEPARATOR.join(path)!r} to {{axis: name}}, got {value!r}")
    if 0 in value:
        raise ExportError(f"export_input_axes() names axis 0 of {SEPARATOR.join(path)!r}; axis 0 is always the batch")
    return {0: BATCH, **{int(k): str(v) for k, v in value.items()}}


@dataclass
class Signature:
    """The graph's named inputs (paths into the nested inputs, dynamic axes) and outputs."""

    paths: list[tuple[str, ...]]
    axes: list[dict[int, str]]
    outputs: list[str] = field(default_factory=list)

    @property
    def names(self) -> list[str]:
        return [SEPARATOR.join(path) for path in self.paths]

    def feeds(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        """NumPy arrays by input name for an ONNX runtime, from a batch's nested ``inputs``."""
        flat = dict(flatten_inputs(inputs))
        missing = [name for name in self.names if name not in flat]
        if missing:
            raise ExportError(f"the batch lacks the graph's inputs {missing}; was it made by this model's preprocessor?")
        return {name: flat[name].detach().cpu().numpy() for name in self.names}

    def describe(self, sample: Mapping[str, Any]) -> list[dict[str, Any]]:
        """One JSON row per input: name, path, dtype and shape with the dynamic axes named."""
        flat = dict(flatten_inputs(sample))
        rows = []
        for name, path, axes in zip(self.names, self.paths, self.axes):
            tensor = flat[name]
            shape = [axes.get(i, int(size)) for i, size in enumerate(tensor.shape)]
            rows.append({"name": name, "path": list(path), "dtype": str(tensor.dtype).removeprefix("torch."),
                         "shape": shape})
        return rows


def signature_of(task: Any, sample_inputs: Mapping[str, Any]) -> Signature:
    """The graph signature of ``task`` for collated ``sample_inputs``, from its backbone's declared axes."""
    flat = flatten_inputs(sample_inputs, paths=True)
    if not flat:
        raise ExportError("the backbone reads no tensors; there is nothing to export")
    declared = task.backbone.export_input_axes(sample_inputs) or {}
    axes = [axes_of(declared, path) for path, _ in flat]
    for (path, tensor), named in zip(flat, axes):
        beyond = [axis for axis in named if axis >= tensor.dim()]
        if beyond:
            raise ExportError(f"export_input_axes() names axes {beyond} of {SEPARATOR.join(path)!r}, which has only "
                              f"{tensor.dim()} dimensions")
    return Signature([path for path, _ in flat], axes)


class ExportGraph(nn.Module):
    """The batch's nested inputs in, the task's export outputs out (a tuple in ``output_names`` order): what is
    traced. Its one argument is the inputs dict itself, whose leaves the exporter flattens in order."""

    def __init__(self, task: Any, output_names: Sequence[str]) -> None:
        super().__init__()
        self.task = task
        self.output_names = list(output_names)

    def forward(self, inputs: dict[str, Any]) -> tuple[torch.Tensor, ...]:
        outputs = self.task.export_outputs(inputs)
        return tuple(outputs[name] for name in self.output_names)


def nested_axes(signature: Signature) -> dict[str, Any]:
    """The dynamic axes nested like the inputs (what ``torch.export``'s ``dynamic_shapes`` mirrors)."""
    return nest_inputs(signature.paths, signature.axes)  # type: ignore[arg-type]

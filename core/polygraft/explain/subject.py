"""The thing being explained: a trained task, one collated input, and what its backbone declares.

:class:`Subject` turns a task and a batch of one into what attribution libraries call: ``forward(x, *others)``
with the attributed tensor ``x`` first and every other input tensor after it (captum repeats those to match
the interpolation steps), a baseline for ``x``, and the mapping between ``x`` and the units a person reads
(words, pixels, time-frequency cells, frames of samples).

Example:
    >>> import polygraft
    >>> from polygraft.explain.subject import Subject
    >>> task = polygraft.create_task("classification", backbone="toy", num_classes=2,
    ...                              backbone_options={"in_features": 3}).eval()
    >>> batch = task.collate([task.prepare_example({"x": [1.0, 0.0, 2.0]})])
    >>> subject = Subject(task, batch, {"x": [1.0, 0.0, 2.0]})
    >>> subject.hooks.kind, subject.declared
    ('vector', False)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch

from polygraft.errors import IncompatibleComponentsError
from polygraft.features import Batch
from polygraft.interfaces.attribution import AttributionHooks
from polygraft.interfaces.task import Task


def get_path(inputs: Mapping[str, Any], path: str) -> Any:
    """``inputs["a"]["b"]`` for ``"a.b"`` (a plain key first, so keys with dots still work)."""
    if path in inputs:
        return inputs[path]
    value: Any = inputs
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            raise IncompatibleComponentsError(f"the backbone's attribution hooks name input {path!r}, but its inputs "
                                              f"hold {sorted(inputs)}; fix attribution_hooks().input")
        value = value[part]
    return value


def tensor_leaves(inputs: Mapping[str, Any], prefix: str = "") -> list[tuple[str, torch.Tensor]]:
    """Every tensor in (nested) inputs with its dotted path, in key order."""
    found = []
    for key, value in inputs.items():
        path = f"{prefix}{key}"
        if isinstance(value, torch.Tensor):
            found.append((path, value))
        elif isinstance(value, Mapping):
            found.extend(tensor_leaves(value, prefix=f"{path}."))
    return found


def with_values(inputs: Mapping[str, Any], values: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    """A copy of (nested) inputs with the tensors at the given dotted paths replaced."""
    rebuilt: dict[str, Any] = {}
    for key, value in inputs.items():
        if key in values:
            rebuilt[key] = values[key]
        elif isinstance(value, Mapping):
            inner = {path[len(key) + 1:]: v for path, v in values.items() if path.startswith(f"{key}.")}
            rebuilt[key] = with_values(value, inner) if inner else value
        else:
            rebuilt[key] = value
    return rebuilt


def words_of(example: Mapping[str, Any], meta: Mapping[str, Any], input_key: str) -> list[str]:
    """The words of one text example: its pre-split ``tokens``, else its text cut at the token ``offsets`` of
    each word (``meta["word_ids"]``); the token-classification pipeline's ``meta["words"]``/``["texts"]`` also do."""
    word_ids = meta.get("word_ids")
    ids = [int(w) for w in torch.as_tensor(word_ids)[0].tolist()] if word_ids is not None else []
    count = max(ids) + 1 if ids and max(ids) >= 0 else 0
    given = example.get("tokens") or (meta.get("words") or [None])[0]
    if isinstance(given, list | tuple) and len(given) >= count:
        return [str(w) for w in given[:count]]
    text = example.get(input_key)
    text = text if isinstance(text, str) else (meta.get("texts") or [None])[0]
    offsets = meta.get("offsets")
    if isinstance(text, str) and offsets is not None:
        spans: dict[int, list[int]] = {}
        for (start, end), word in zip(torch.as_tensor(offsets)[0].tolist(), ids):
            if word >= 0:
                span = spans.setdefault(word, [start, end])
                span[0], span[1] = min(span[0], start), max(span[1], end)
        return [text[spans[w][0]:spans[w][1]] if w in spans else f"word {w}" for w in range(count)]
    return [f"word {w}" for w in range(count)]


def fallback_hooks(inputs: Mapping[str, Any]) -> AttributionHooks:
    """What a backbone that declares nothing is explained through: its largest floating-point input (else its
    largest integer one), by the number of dimensions it has."""
    leaves = [(path, t) for path, t in tensor_leaves(inputs) if t.dim() >= 2]
    if not leaves:
        raise IncompatibleComponentsError("this backbone's inputs hold no batched tensor to attribute; give it "
                                          "attribution_hooks() (docs/hooks.md, 'Explaining predictions')")
    floating = [(p, t) for p, t in leaves if t.is_floating_point()]
    path, tensor = max(floating or leaves, key=lambda item: item[1][0].numel())
    if not tensor.is_floating_point():
        return AttributionHooks(input=path, kind="tokens", baseline=0)
    kind = {2: "vector", 3: "grid", 4: "image"}.get(tensor.dim(), "grid")
    return AttributionHooks(input=path, kind=kind, baseline=0.0)


class Subject:
    """A task in eval mode and a collated batch of one example, seen through the backbone's attribution hooks."""

    def __init__(self, task: Task, batch: Batch, example: Mapping[str, Any]) -> None:
        from polygraft.explain.tasks import adapter_for

        self.task = task
        self.batch = batch
        self.example = example
        self.inputs: Mapping[str, Any] = batch["inputs"]
        self.meta: Mapping[str, Any] = batch.get("meta", {})
        declared = task.backbone.attribution_hooks()
        self.declared = declared is not None
        self.hooks = declared if declared is not None else fallback_hooks(self.inputs)
        self.x: torch.Tensor = get_path(self.inputs, self.hooks.input)
        if self.x.shape[0] != 1:
            raise IncompatibleComponentsError(f"explain one example at a time (got a batch of {self.x.shape[0]})")
        self.other_paths = [path for path, _ in tensor_leaves(self.inputs) if path != self.hooks.input]
        self.others = tuple(get_path(self.inputs, path) for path in self.other_paths)
        self.adapter = adapter_for(task, batch)

    # -- the function attribution libraries call ----------------------------------------------------------------
    def inputs_with(self, x: torch.Tensor, others: tuple[torch.Tensor, ...]) -> dict[str, Any]:
        return with_values(self.inputs, {self.hooks.input: x, **dict(zip(self.other_paths, others))})

    def outputs(self, x: torch.Tensor, *others: torch.Tensor) -> Any:
        """The task's differentiable outputs (logits, tag logits, CTC log-probabilities, detections)."""
        return self.adapter.forward(self.inputs_with(x, others or self.others))

    def forward_for(self, score: Callable[[Any], torch.Tensor]) -> Callable[..., torch.Tensor]:
        """``f(x, *others) -> (B,)``: one target's score, as captum's ``forward_func``."""
        def forward(x: torch.Tensor, *others: torch.Tensor) -> torch.Tensor:
            return score(self.outputs(x, *others))

        return forward

    # -- baselines and units -----------------------------------------------------------------------------------
    def special_tokens(self) -> torch.Tensor:
        """(T,) bool: tokens kept in every baseline (``word_ids == -1`` on real positions: [CLS], [SEP])."""
        word_ids = self.meta.get("word_ids")
        if word_ids is None:
            return torch.zeros(self.x.shape[1], dtype=torch.bool, device=self.x.device)
        return (torch.as_tensor(word_ids)[0] < 0).to(self.x.device)

    def baseline(self, x: torch.Tensor | None = None) -> torch.Tensor:
        """The "nothing here" input of the same shape as ``x`` (default: the subject's own input)."""
        x = self.x if x is None else x
        value = self.hooks.baseline
        if self.hooks.kind == "tokens":
            fill = torch.full_like(x, int(value) if isinstance(value, int | float | torch.Tensor) else 0)
            return torch.where(self.special_tokens().expand_as(x), x, fill)
        if value is None:
            return torch.zeros_like(x)
        if callable(value) and not isinstance(value, torch.Tensor):
            return value(x).to(x.dtype).expand_as(x).clone()
        if isinstance(value, torch.Tensor):
            return value.to(device=x.device, dtype=x.dtype).expand_as(x).clone()
        return torch.full_like(x, float(value))

    def word_ids(self) -> list[int]:
        """The word of each token (-1: special token or padding); each token its own word without ``word_ids``."""
        word_ids = self.meta.get("word_ids")
        if word_ids is None:
            return list(range(self.x.shape[1]))
        return [int(w) for w in torch.as_tensor(word_ids)[0].tolist()]

    def words(self) -> list[str]:
        """The words of a text input, in order."""
        return words_of(self.example, self.meta, self.task.backbone.preprocessor.input_key)

    def unit_scores(self, values: torch.Tensor) -> np.ndarray:
        """Input-shaped attributions of one example → the map a person reads (see :data:`INPUT_KINDS`)."""
        values = values.detach().float().cpu()
        kind = self.hooks.kind
        if kind == "tokens":
            tokens = values.reshape(values.shape[0], -1).sum(-1) if values.dim() > 1 else values
            ids = self.word_ids()
            count = max(ids) + 1 if ids and max(ids) >= 0 else 0
            merged = torch.zeros(count)
            for position, word in enumerate(ids[: tokens.shape[0]]):
                if word >= 0:
                    merged[word] += tokens[position]
            return merged.numpy()
        if kind == "image" or (kind == "spectrogram" and values.dim() == 3):
            return values.sum(0).numpy()
        if kind == "waveform":
            frame = int(self.hooks.frame_size or 1)
            flat = values.reshape(-1)
            pad = (-flat.shape[0]) % frame
            return torch.nn.functional.pad(flat, (0, pad)).reshape(-1, frame).sum(-1).numpy()
        if kind == "grid" and values.dim() > 2:
            return values.reshape(-1, *values.shape[-2:]).sum(0).numpy()
        return values.numpy()

    def units(self) -> list[str] | None:
        """Names of 1-D units: words for text, ``feature i`` for vectors; ``None`` for maps."""
        if self.hooks.kind == "tokens":
            return self.words()
        if self.hooks.kind == "vector":
            return [f"feature {i}" for i in range(self.x.shape[-1])]
        return None

    def removed(self, unit_mask: np.ndarray) -> torch.Tensor:
        """The input with the units where ``unit_mask`` is True set to the baseline (deletion checks)."""
        mask = torch.as_tensor(np.asarray(unit_mask, dtype=bool))
        x, base = self.x, self.baseline()
        kind = self.hooks.kind
        if kind == "tokens":
            ids = self.word_ids()
            element = torch.tensor([w >= 0 and bool(mask[w]) for w in ids[: x.shape[1]]])[None]
        elif kind == "waveform":
            frame = int(self.hooks.frame_size or 1)
            element = mask.repeat_interleave(frame)[: x.shape[-1]].reshape(x.shape)
        else:
            element = mask.reshape(*([1] * (x.dim() - mask.dim())), *mask.shape).expand_as(x)
        return torch.where(element.to(x.device), base, x)

"""What is explained for each task: differentiable outputs and one :class:`Target` per explained output.

* classification: the class asked for (``--target LABEL``) or the predicted one; its log-probability.
* token classification: every word's predicted tag (its log-probability at the word's first sub-token); ``--target`` keeps
  the words tagged with that tag or entity type (``B-LOC``, ``LOC``) or that word.
* CTC: every character the greedy decoding emits (its log-probability at the frame where it peaks); ``--target``
  keeps one character.
* detection: every predicted box scoring at least ``min_score`` (FCOS's score at the location that predicted
  it); ``--target`` keeps one label.

Example:
    >>> import polygraft
    >>> from polygraft.explain.tasks import adapter_for
    >>> task = polygraft.create_task("classification", backbone="toy", label_names=["no", "yes"],
    ...                              backbone_options={"in_features": 2}).eval()
    >>> batch = task.collate([task.prepare_example({"x": [1.0, 2.0]})])
    >>> [t.label for t in adapter_for(task, batch).targets(task.predict(batch)[0], "yes")]
    ['yes']
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import torch

from polygraft.errors import ConfigError, IncompatibleComponentsError
from polygraft.features import Batch
from polygraft.interfaces.task import Task
from polygraft.options import closest


@dataclass
class Target:
    """One output to explain.

    ``value(outputs) -> (B,)`` is what attributions explain and add up to, named by ``quantity``: the
    log-probability of a class, tag or character (unlike a probability it does not flatten out near 0, so a word
    that rules a class out gets a clearly negative share; unlike a raw logit it cannot rise with every other
    class's logit), or a box's score. ``probability`` is its probability, which the deletion check reads.
    """

    name: str
    label: str
    value: Callable[[Any], torch.Tensor]
    probability: Callable[[Any], torch.Tensor]
    quantity: str = "log-probability"
    info: dict[str, Any] = field(default_factory=dict)


def _tag_log_probability(logits: torch.Tensor, *, position: int, tag: int) -> torch.Tensor:
    return torch.log_softmax(logits.float()[:, position], dim=-1)[:, tag]


def _tag_probability(logits: torch.Tensor, *, position: int, tag: int) -> torch.Tensor:
    return torch.softmax(logits.float()[:, position], dim=-1)[:, tag]


def _frame_log_probability(log_probs: torch.Tensor, *, frame: int, token: int) -> torch.Tensor:
    return log_probs[:, frame, token]


def _frame_probability(log_probs: torch.Tensor, *, frame: int, token: int) -> torch.Tensor:
    return log_probs[:, frame, token].exp()


def _location_score(dense: torch.Tensor, *, location: int, class_id: int) -> torch.Tensor:
    return dense[:, location, class_id]


def _pick(requested: str | None, choices: list[str], what: str) -> None:
    if requested is not None and requested not in choices:
        near = closest(requested, choices)
        hint = f"; did you mean {' or '.join(repr(n) for n in near)}?" if near else ""
        raise ConfigError(f"--target {requested!r} is not {what}{hint} Choose from: {', '.join(choices[:30])}")


class TaskAdapter:
    """Base: ``forward(inputs)`` gives differentiable outputs, ``targets(prediction, requested)`` what to explain."""

    #: detection: boxes scoring below ``min_score`` are not explained, nor more than ``max_boxes`` (``Settings``)
    min_score = 0.3
    max_boxes = 10

    def __init__(self, task: Task, batch: Batch) -> None:
        self.task = task
        self.batch = batch

    def forward(self, inputs: Mapping[str, Any]) -> Any:
        return self.task.head(self.task.backbone(inputs))

    def targets(self, prediction: Mapping[str, Any], requested: str | None) -> list[Target]:
        raise NotImplementedError


class ClassificationAdapter(TaskAdapter):
    def targets(self, prediction: Mapping[str, Any], requested: str | None) -> list[Target]:
        names = list(self.task.label_names)
        _pick(requested, names, "one of the model's classes")
        label = requested if requested is not None else str(prediction["label"])
        index = names.index(label)
        return [Target(name=label, label=label, info={"class": index},
                       value=lambda logits: torch.log_softmax(logits.float(), dim=-1)[:, index],
                       probability=lambda logits: torch.softmax(logits.float(), dim=-1)[:, index])]


class TokenClassificationAdapter(TaskAdapter):
    def targets(self, prediction: Mapping[str, Any], requested: str | None) -> list[Target]:
        from polygraft.explain.subject import words_of

        words = words_of({}, self.batch["meta"], self.task.backbone.preprocessor.input_key)
        tags = list(prediction["tags"])
        word_ids = torch.as_tensor(self.batch["meta"]["word_ids"])[0].tolist()
        first = {}
        for position, word in enumerate(word_ids):
            if word >= 0 and word not in first:
                first[word] = position
        keep = list(range(len(tags)))
        if requested is not None:
            choices = sorted({*tags, *(t[2:] for t in tags if t[:2] in ("B-", "I-")), *words})
            _pick(requested, choices, "a predicted tag, entity type or word of this input")
            keep = [i for i in keep if requested in (tags[i], tags[i][2:], words[i] if i < len(words) else None)]
        targets = []
        for i in keep:
            position, tag_id = first[i], self.task.label_names.index(tags[i])
            word = words[i] if i < len(words) else f"word {i}"
            targets.append(Target(
                name=f"{word} → {tags[i]}", label=tags[i], info={"word": i, "position": position},
                value=partial(_tag_log_probability, position=position, tag=tag_id),
                probability=partial(_tag_probability, position=position, tag=tag_id)))
        return targets


class CTCAdapter(TaskAdapter):
    def forward(self, inputs: Mapping[str, Any]) -> torch.Tensor:
        return self.task.head(self.task.backbone(inputs))[0]

    def targets(self, prediction: Mapping[str, Any], requested: str | None) -> list[Target]:
        from polygraft.tasks.ctc import UNKNOWN

        with torch.no_grad():
            log_probs = self.forward(self.batch["inputs"])[0]
        best = log_probs.argmax(-1).tolist()
        names = self.task.label_names
        emitted = []  # (character, frame where its run peaks)
        start = 0
        for frame in range(1, len(best) + 1):
            if frame == len(best) or best[frame] != best[start]:
                token = best[start]
                if token != 0 and names[token] != UNKNOWN:
                    peak = start + int(log_probs[start:frame, token].argmax())
                    emitted.append((names[token], token, peak))
                start = frame
        if requested is not None:
            _pick(requested, sorted({c for c, _, _ in emitted}), "a character of this transcript")
        return [Target(name=f"{i}: {char!r}", label=char, info={"index": i, "frame": frame, "frames": len(best)},
                       value=partial(_frame_log_probability, frame=frame, token=token),
                       probability=partial(_frame_probability, frame=frame, token=token))
                for i, (char, token, frame) in enumerate(emitted) if requested in (None, char)]


class DetectionAdapter(TaskAdapter):
    """Outputs are FCOS's dense scores ``(B, locations, classes)``; a box is explained through the score of the
    location that predicted it (found once, on the input itself), which keeps the explained function smooth:
    no score threshold or NMS decides along an integration path whether the box exists."""

    def forward(self, inputs: Mapping[str, Any]) -> torch.Tensor:
        features = self.task.backbone(inputs)
        sizes = self.batch["sizes"].expand(features.pool().shape[0], -1)
        return self.task.head.dense(features, sizes)[0]

    def targets(self, prediction: Mapping[str, Any], requested: str | None) -> list[Target]:
        from torchvision.ops import clip_boxes_to_image

        labels = list(prediction["labels"])
        if requested is not None:
            _pick(requested, sorted(set(labels)) or list(self.task.label_names), "a label of a predicted box")
        with torch.no_grad():
            features = self.task.backbone(self.batch["inputs"])
            dense_scores, boxes = self.task.head.dense(features, self.batch["sizes"])
            height, width = (int(v) for v in self.batch["sizes"][0])
            boxes = clip_boxes_to_image(boxes[0].float(), (height, width))  # as the predicted boxes were
        sx, sy = (float(v) for v in self.batch["scales"][0])
        targets: list[Target] = []
        for i, (box, label, score) in enumerate(zip(prediction["boxes"], labels, prediction["scores"])):
            if score < self.min_score or requested not in (None, label) or len(targets) == self.max_boxes:
                continue
            reference = torch.tensor([[box[0] * sx, box[1] * sy, box[2] * sx, box[3] * sy]], device=boxes.device)
            class_id = self.task.label_names.index(label)
            # the location whose decoded box is this box (up to predict's rounding), the best-scoring on a tie
            distance = (boxes - reference).abs().sum(-1)
            location = int(torch.argmin(distance - 1e-3 * dense_scores[0, :, class_id]))
            targets.append(Target(
                name=f"box {i}: {label} {score:.2f}", label=label, quantity="score",
                value=partial(_location_score, location=location, class_id=class_id),
                probability=partial(_location_score, location=location, class_id=class_id),
                info={"box": [round(float(v), 2) for v in box], "location": location,
                      "input_box": [round(float(v), 2) for v in reference[0].tolist()]}))
        return targets


def adapter_for(task: Task, batch: Batch) -> TaskAdapter:
    """The adapter of a core task; a third-party task whose head gives ``(B, classes)`` logits is treated as
    classification."""
    from polygraft.tasks.classification import ClassificationTask
    from polygraft.tasks.ctc import CTCTask
    from polygraft.tasks.detection import DetectionTask
    from polygraft.tasks.token_classification import TokenClassificationTask

    for kind, adapter in ((ClassificationTask, ClassificationAdapter), (TokenClassificationTask,
                          TokenClassificationAdapter), (CTCTask, CTCAdapter), (DetectionTask, DetectionAdapter)):
        if isinstance(task, kind):
            return adapter(task, batch)
    with torch.no_grad():
        logits = task.head(task.backbone(batch["inputs"]))
    if isinstance(logits, torch.Tensor) and logits.dim() == 2 and logits.shape[1] == task.num_classes:
        return ClassificationAdapter(task, batch)
    raise IncompatibleComponentsError(
        f"polygraft explain knows classification, token-classification, ctc and detection; task "
        f"{task.spec_name or type(task).__name__!r} gives {type(logits).__name__} outputs it cannot read")

"""Every reported metric against an independent reference on the same predictions, fed batch by batch to the
task's own ``update_metrics`` / ``compute_metrics`` in awkward orders (sorted by class or length, batches of one,
random): scikit-learn for classification, seqeval for entities, pycocotools' COCOeval for detection, jiwer for
WER/CER."""

from __future__ import annotations

import contextlib
import io
import random
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import jiwer
import pytest
import torch
from sklearn import metrics as skm

import polygraft
from polygraft.interfaces.training_module import StepOutput

LOSS = torch.tensor(0.0)


def feed(task: Any, count: int, order: Sequence[int], sizes: Sequence[int],
         make_batch: Callable[[list[int]], tuple[dict[str, Any], Any]]) -> dict[str, float]:
    """Reset, update with ``order`` cut into ``sizes``, compute."""
    assert sum(sizes) == count and sorted(order) == list(range(count))
    task.reset_metrics()
    start = 0
    for size in sizes:
        batch, outputs = make_batch(list(order[start:start + size]))
        task.update_metrics(batch, StepOutput(loss=LOSS, outputs=outputs))
        start += size
    return task.compute_metrics()


def orders(count: int, key: Callable[[int], Any], seed: int) -> dict[str, list[int]]:
    shuffled = list(range(count))
    random.Random(seed).shuffle(shuffled)
    return {"sorted": sorted(range(count), key=key), "reversed": sorted(range(count), key=key, reverse=True),
            "random": shuffled}


def splits(count: int) -> list[list[int]]:
    return [[count], [1] * count, [1, count - 1], [7] * (count // 7) + ([count % 7] if count % 7 else []),
            [count // 2, count - count // 2]]


# ----------------------------------------------------------------------------------------- classification
CLASSES = 10


def classification_task() -> Any:
    return polygraft.create_task("classification", backbone="toy", label_names=[f"c{i}" for i in range(CLASSES)],
                                 backbone_options={"in_features": 2})


def classification_reference(logits: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    y, predicted = labels.numpy(), logits.argmax(1).numpy()
    return {"accuracy": skm.accuracy_score(y, predicted),
            "macro_f1": skm.f1_score(y, predicted, average="macro"),
            "top5_accuracy": skm.top_k_accuracy_score(y, logits.numpy(), k=5, labels=list(range(CLASSES)))}


def test_top5_is_right_when_the_first_batch_holds_one_class() -> None:
    """The issue's reproduction: 64 of class 0 predicted 0, then 64 of class 1 ranked second (class 0 first)."""
    task = classification_task()
    logits = -torch.arange(CLASSES, dtype=torch.float32).repeat(128, 1)  # class 0 first, class 1 second, ...
    labels = torch.tensor([0] * 64 + [1] * 64)
    reference = classification_reference(logits, labels)
    assert reference["top5_accuracy"] == 1.0 and reference["accuracy"] == 0.5
    for sizes in ([64, 64], [128], [32] * 4):
        computed = feed(task, 128, range(128), sizes, lambda ix: ({"labels": labels[ix]}, logits[ix]))
        assert computed == pytest.approx(reference, abs=1e-6), sizes


@pytest.mark.parametrize("order_name", ["sorted", "reversed", "random"])
def test_classification_metrics_match_scikit_learn(order_name: str) -> None:
    generator = torch.Generator().manual_seed(0)
    count = 150
    labels = torch.randint(0, CLASSES - 1, (count,), generator=generator)  # the last class never occurs...
    logits = torch.randn(count, CLASSES, generator=generator)
    logits[torch.arange(count), labels] += 1.0  # ...better than chance, the true class at every rank
    logits[:12, CLASSES - 1] += 5.0  # ...but is predicted now and then (F1 over classes seen in either)
    reference = classification_reference(logits, labels)
    assert 0.2 < reference["accuracy"] < reference["top5_accuracy"] < 1.0
    expected_confusion = skm.confusion_matrix(labels.numpy(), logits.argmax(1).numpy(), labels=list(range(CLASSES)))
    task = classification_task()
    order = orders(count, key=lambda i: int(labels[i]), seed=1)[order_name]
    for sizes in splits(count):
        computed = feed(task, count, order, sizes, lambda ix: ({"labels": labels[ix]}, logits[ix]))
        assert computed == pytest.approx(reference, abs=1e-6), sizes
        assert task.confusion_matrix().tolist() == expected_confusion.tolist()


# ----------------------------------------------------------------------------------------- token classification
TAGS = ["O", "B-LOC", "I-LOC", "B-PER", "I-PER", "B-ORG", "I-ORG"]
IGNORE = -100


def tag_sequences(count: int, seed: int) -> tuple[list[list[str]], list[list[str]]]:
    """Gold IOB2 sentences and predictions with errors (wrong types, broken spans, I- without B-)."""
    rng = random.Random(seed)
    gold, predicted = [], []
    for _ in range(count):
        tags: list[str] = []
        length = rng.randint(1, 14)
        while len(tags) < length:
            if rng.random() < 0.5:
                tags.append("O")
            else:
                kind = rng.choice(["LOC", "PER", "ORG"])
                tags += [f"B-{kind}"] + [f"I-{kind}"] * rng.randint(0, 2)
        gold.append(tags)
        predicted.append([rng.choice(TAGS) if rng.random() < 0.15 else tag for tag in tags])
    return gold, predicted


def token_batch(gold: list[list[str]], predicted: list[list[str]], rows: list[int],
                seed: int) -> tuple[dict[str, Any], torch.Tensor]:
    """Labels and logits as a sub-word model would see them: a special token first and last, some words split
    into several pieces (-100 on every piece but the first), padding to the longest row; noise where ignored."""
    rng = random.Random(seed + rows[0])
    label_rows, predicted_rows = [], []
    for row in rows:
        labels, guesses = [IGNORE], [rng.randrange(len(TAGS))]
        for tag, guess in zip(gold[row], predicted[row]):
            pieces = rng.choice([1, 1, 2, 3])
            labels += [TAGS.index(tag)] + [IGNORE] * (pieces - 1)
            guesses += [TAGS.index(guess)] + [rng.randrange(len(TAGS)) for _ in range(pieces - 1)]
        label_rows.append([*labels, IGNORE])
        predicted_rows.append([*guesses, rng.randrange(len(TAGS))])
    width = max(len(r) for r in label_rows)
    labels = torch.full((len(rows), width), IGNORE)
    logits = torch.randn(len(rows), width, len(TAGS), generator=torch.Generator().manual_seed(seed))
    for i, (row_labels, row_guesses) in enumerate(zip(label_rows, predicted_rows)):
        labels[i, : len(row_labels)] = torch.tensor(row_labels)
        logits[i, torch.arange(len(row_guesses)), torch.tensor(row_guesses)] += 10.0
    return {"labels": labels}, logits


def test_entity_metrics_match_seqeval_in_any_batch_order() -> None:
    from seqeval import metrics as sq
    from seqeval.scheme import IOB2

    gold, predicted = tag_sequences(60, seed=2)
    strict: dict[str, Any] = {"mode": "strict", "scheme": IOB2, "zero_division": 0}
    reference = {"precision": sq.precision_score(gold, predicted, **strict),
                 "recall": sq.recall_score(gold, predicted, **strict),
                 "f1": sq.f1_score(gold, predicted, **strict),
                 "accuracy": sq.accuracy_score(gold, predicted)}
    per_type = sq.f1_score(gold, predicted, average=None, **strict)
    reference |= {f"f1_{kind}": float(f1) for kind, f1 in zip(["LOC", "ORG", "PER"], per_type)}
    lenient = sq.f1_score(gold, predicted)  # the default (conlleval) mode scores broken spans differently
    assert 0.3 < reference["f1"] < 0.95 and lenient != pytest.approx(reference["f1"])
    task = polygraft.create_task("token-classification", backbone="toy", label_names=TAGS,
                                 backbone_options={"in_features": 2})
    for order_name, order in orders(len(gold), key=lambda i: len(gold[i]), seed=3).items():
        for sizes in splits(len(gold)):
            computed = feed(task, len(gold), order, sizes, partial(token_batch, gold, predicted, seed=len(sizes)))
            assert computed == pytest.approx(reference, abs=1e-9), (order_name, sizes)


# ----------------------------------------------------------------------------------------- detection
def detection_data(count: int, seed: int) -> tuple[list[dict[str, torch.Tensor]], list[dict[str, torch.Tensor]]]:
    """Ground truth and detections per image (xyxy): jittered hits, wrong labels, misses, false positives, an
    image with boxes and no detections, one with detections and no boxes."""
    rng = random.Random(seed)
    targets, detections = [], []
    for image in range(count):
        boxes, labels, found, scores, kinds = [], [], [], [], []
        for _ in range(0 if image == 1 else rng.randint(1, 5)):
            x, y, w, h = rng.uniform(0, 150), rng.uniform(0, 150), rng.uniform(8, 60), rng.uniform(8, 60)
            boxes.append([x, y, x + w, y + h])
            labels.append(rng.randrange(3))
            if image != 0 and rng.random() < 0.85:
                jitter = [rng.uniform(-0.15, 0.15) * (w if k % 2 == 0 else h) for k in range(4)]
                found.append([c + d for c, d in zip(boxes[-1], jitter)])
                kinds.append(labels[-1] if rng.random() < 0.85 else rng.randrange(3))
                scores.append(rng.random())
        for _ in range(rng.randint(0, 3) if image != 0 else 0):  # false positives
            x, y = rng.uniform(0, 180), rng.uniform(0, 180)
            found.append([x, y, x + rng.uniform(5, 30), y + rng.uniform(5, 30)])
            kinds.append(rng.randrange(3))
            scores.append(rng.random() * 0.7)
        targets.append({"boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
                        "labels": torch.tensor(labels, dtype=torch.long)})
        detections.append({"boxes": torch.tensor(found, dtype=torch.float32).reshape(-1, 4),
                           "scores": torch.tensor(scores, dtype=torch.float32),
                           "labels": torch.tensor(kinds, dtype=torch.long)})
    return targets, detections


def cocoeval_reference(targets: list[dict[str, torch.Tensor]],
                       detections: list[dict[str, torch.Tensor]]) -> dict[str, float]:
    """pycocotools run directly: a ground-truth COCO dict and a detection list, boxes as [x, y, w, h]."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    def xywh(box: torch.Tensor) -> list[float]:
        x0, y0, x1, y1 = box.tolist()
        return [x0, y0, x1 - x0, y1 - y0]

    annotations, results = [], []
    for image, (target, found) in enumerate(zip(targets, detections)):
        for box, label in zip(target["boxes"], target["labels"]):
            bbox = xywh(box)
            annotations.append({"id": len(annotations) + 1, "image_id": image, "category_id": int(label),
                                "bbox": bbox, "area": bbox[2] * bbox[3], "iscrowd": 0})
        results += [{"image_id": image, "category_id": int(label), "bbox": xywh(box), "score": float(score)}
                    for box, label, score in zip(found["boxes"], found["labels"], found["scores"])]
    with contextlib.redirect_stdout(io.StringIO()):
        truth = COCO()
        truth.dataset = {"images": [{"id": i} for i in range(len(targets))], "annotations": annotations,
                         "categories": [{"id": k} for k in range(3)]}
        truth.createIndex()
        evaluation = COCOeval(truth, truth.loadRes(results), "bbox")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    stats = evaluation.stats
    return {"map": stats[0], "map_50": stats[1], "map_75": stats[2], "mar_100": stats[8]}


def test_detection_map_matches_cocoeval_across_batch_splits() -> None:
    targets, detections = detection_data(14, seed=4)
    reference = cocoeval_reference(targets, detections)
    assert 0.1 < reference["map"] < reference["map_50"] < 1.0 and 0.0 < reference["mar_100"] < 1.0
    task = polygraft.create_task("detection", backbone="timm", label_names=["a", "b", "c"],
                                 backbone_options={"model_name": "test_resnet", "features": "maps", "image_size": 32})
    task.eval()

    def make_batch(ix: list[int]) -> tuple[dict[str, Any], dict[str, Any]]:
        return {"targets": [targets[i] for i in ix]}, {"detections": [detections[i] for i in ix], "losses": {}}

    named_orders = orders(len(targets), key=lambda i: len(targets[i]["boxes"]), seed=5)
    for order_name, sizes in [("sorted", [14]), ("random", [1] * 14), ("reversed", [5, 9]), ("random", [3, 3, 8])]:
        computed = feed(task, len(targets), named_orders[order_name], sizes, make_batch)
        assert computed == pytest.approx(reference, abs=1e-6), (order_name, sizes)


# ----------------------------------------------------------------------------------------- ctc
CTC_LABELS = ["<blank>", "<unk>", " ", "a", "b", "c"]


def ctc_batch(predictions: list[str], references: list[str], rows: list[int]) -> tuple[dict[str, Any], Any]:
    """Log-probabilities that greedy decoding turns into the predictions (each character then a blank frame,
    a repeated best class, and padding frames past each row's length that would decode to junk)."""
    frames = [[k for char in predictions[row] for k in (CTC_LABELS.index(char),) * 2 + (0,)] for row in rows]
    width = max(len(f) for f in frames) + 3
    log_probs = torch.full((len(rows), width, len(CTC_LABELS)), -30.0)
    log_probs[:, :, 3] = 0.0  # past the length: "a" everywhere, which must not be decoded
    for i, row in enumerate(frames):
        log_probs[i, : len(row)] = -30.0
        log_probs[i, torch.arange(len(row)), torch.tensor(row)] = 0.0
    lengths = torch.tensor([len(row) for row in frames])
    batch = {"meta": {"transcripts": [references[row] for row in rows],
                      "unknown_characters": torch.zeros(len(rows), dtype=torch.long)}}
    return batch, {"log_probs": log_probs.log_softmax(-1), "lengths": lengths}


def test_decoded_ctc_outputs_are_scored_like_jiwer() -> None:
    rng = random.Random(6)
    words = ["a", "ab", "abc", "ba", "cab", "cc", "bca"]
    references = [" ".join(rng.choice(words) for _ in range(rng.randint(1, 5))) for _ in range(30)]
    predictions = []
    for reference in references:  # dropped, swapped and inserted characters and words
        chars = [c for c in reference if rng.random() > 0.1]
        chars = [rng.choice("abc") if c != " " and rng.random() < 0.1 else c for c in chars]
        if rng.random() < 0.2:
            chars += [" ", *rng.choice(words)]
        predictions.append(" ".join("".join(chars).split()) or "a")
    expected = {"wer": jiwer.wer(references, predictions), "cer": jiwer.cer(references, predictions),
                "unknown_characters": 0.0}
    task = polygraft.create_task("ctc", backbone="toy", label_names=CTC_LABELS, backbone_options={"in_features": 2})
    _, outputs = ctc_batch(predictions, references, list(range(len(references))))
    assert task.decode(outputs["log_probs"], outputs["lengths"]) == predictions
    for order_name, order in orders(len(references), key=lambda i: len(references[i]), seed=7).items():
        for sizes in splits(len(references)):
            computed = feed(task, len(references), order, sizes, lambda ix: ctc_batch(predictions, references, ix))
            assert computed == pytest.approx(expected, rel=1e-6), (order_name, sizes)

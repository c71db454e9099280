"""Conformance checks of one dataset: the split names, example keys, label names, determinism, and that a
backbone of the same modality reads its examples.

Example keys by ``DatasetSpec.target``: ``class`` → ``label``; ``tags`` → ``tokens`` + ``tags``; ``boxes`` →
``boxes`` + ``labels``; ``transcript`` → ``transcript``; ``mask`` → ``mask``; ``identity`` → ``label`` (who it is);
``span`` → ``context`` + ``question`` + ``answers`` (read by the backbone's ``for_question_answering`` variant);
``none`` → only the input. Otherwise the input key is the
modality's (``ModalitySpec.input_key``: ``text``, ``image``, ``audio``, ``x``...).

Example:
    >>> from polygraft.conformance.datasets import check_dataset_checks
    >>> from polygraft.conformance.report import Report
    >>> from polygraft.plugins import build_catalog
    >>> report = Report("polygraft")
    >>> source = check_dataset_checks(build_catalog(autoload=False), "synthetic-classification", {"size": 8}, report)
    >>> report.passed, len(source)
    (True, 8)
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from polygraft.conformance.backbones import input_key_of
from polygraft.conformance.report import CheckFailed, Report
from polygraft.conformance.steps import Abort, Steps, differences, require

if TYPE_CHECKING:
    from polygraft.interfaces import Backbone, DataSource
    from polygraft.plugins import Catalog

TARGET_KEYS: dict[str, tuple[str, ...]] = {"class": ("label",), "tags": ("tags",), "boxes": ("boxes", "labels"),
                                           "transcript": ("transcript",), "mask": ("mask",),
                                           "identity": ("label",), "span": ("question", "answers"), "none": ()}
INPUT_KEYS_BY_TARGET = {"tags": "tokens", "span": "context"}
SAMPLED = 3


def expected_keys(catalog: Catalog, spec: Any) -> tuple[str, tuple[str, ...]]:
    """The input key and target keys a dataset's examples must carry."""
    input_key = spec.metadata.get("input_key") or INPUT_KEYS_BY_TARGET.get(spec.target) \
        or input_key_of(catalog, spec.modality)
    return input_key, TARGET_KEYS.get(spec.target, ())


def _labels_in(example: Mapping[str, Any], target: str) -> list[str]:
    if target in ("class", "identity") and "label" in example:
        return [str(example["label"])]
    if target == "tags":
        return [str(t) for t in example.get("tags", [])]
    if target == "boxes":
        return [str(t) for t in example.get("labels", [])]
    return []


def _open(catalog: Catalog, name: str, options: Mapping[str, Any], split: str) -> DataSource:
    from polygraft.api import load_dataset
    from polygraft.interfaces import DataSource

    source = load_dataset(name, catalog=catalog, **{"split": split, **options})
    require(isinstance(source, DataSource),
            f"the factory returned a {type(source).__name__}; return a polygraft.interfaces.DataSource "
            "(InMemorySource or a subclass with __len__ and _example)")
    return source


def _check_examples(catalog: Catalog, spec: Any, source: DataSource) -> list[dict[str, Any]]:
    require(len(source) > 0, "the train split is empty")
    input_key, target_keys = expected_keys(catalog, spec)
    examples = [source[index] for index in range(min(SAMPLED, len(source)))]
    for index, example in enumerate(examples):
        require(isinstance(example, dict), f"example {index} is a {type(example).__name__}; yield dicts")
        require(input_key in example, f"example {index} has no {input_key!r} key (keys: {sorted(example)}); the "
                                      f"{spec.modality!r} modality's preprocessors read {input_key!r}")
        missing = [key for key in target_keys if key not in example]
        require(not missing, f"example {index} has no {missing} (keys: {sorted(example)}); a dataset with target "
                             f"{spec.target!r} yields {list(target_keys)}")
    return examples


def _check_label_names(spec: Any, source: DataSource, examples: Sequence[Mapping[str, Any]], steps: Steps) -> None:
    names = source.label_names
    if spec.target not in ("class", "tags", "boxes", "identity"):
        return
    if names is None:
        steps.warn("label_names", "label_names is None: a task will train on the sorted labels of the training "
                                  "data; set source.label_names to fix the classes and their order")
        return
    require(isinstance(names, list | tuple) and all(isinstance(n, str) for n in names),
            f"label_names must be a list of str, got {names!r}")
    require(len(set(names)) == len(names), f"label_names has duplicates: {names}")
    unknown = sorted({label for example in examples for label in _labels_in(example, spec.target)} - set(names))
    require(not unknown, f"examples carry labels {unknown} that are not in label_names {list(names)[:10]}")


def _check_split_names(catalog: Catalog, name: str, options: Mapping[str, Any]) -> list[str]:
    from polygraft.errors import PolygraftError
    from polygraft.interfaces.datasource import SPLITS

    refused = []
    for split in SPLITS:
        if split == "train":
            continue
        try:
            _open(catalog, name, options, split)
        except PolygraftError as exc:  # a clear refusal ("no val split unless val_size > 0") is allowed
            refused.append(f"{split}: {exc}")
    return refused


def _check_deterministic(catalog: Catalog, name: str, options: Mapping[str, Any],
                         examples: Sequence[Mapping[str, Any]]) -> None:
    again = _open(catalog, name, options, "train")
    second = [again[index] for index in range(min(len(examples), len(again)))]
    diff = differences(_plain(examples), _plain(second))
    require(not diff and len(second) == len(examples),
            "opening the train split twice gives different examples; seed every shuffle and split (seed=...)")


def _plain(value: Any) -> Any:
    """Examples as comparable data: images and arrays as tensors, paths as strings."""
    import numpy as np
    import torch

    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return torch.as_tensor(np.array(value))
    if hasattr(value, "tobytes") and hasattr(value, "size") and hasattr(value, "mode"):  # a PIL image
        return torch.as_tensor(np.array(value))
    return value if isinstance(value, torch.Tensor | str | int | float | bool | type(None)) else str(value)


def _check_with_backbone(backbone: Backbone, examples: Sequence[Mapping[str, Any]], target: str) -> None:
    import torch

    pre = backbone.preprocessor
    if target == "span":  # question + context, one or more windows per example
        pre = pre.for_question_answering(doc_stride=0, max_question_tokens=max(1, getattr(pre, "max_length", 64) // 4))
    batch = pre.collate([pre(example) for example in examples])
    backbone.eval()
    with torch.no_grad():
        features = backbone(batch)
    rows = features.pool().shape[0]
    require(rows == len(examples) or (target == "span" and rows >= len(examples)),
            "the backbone's features lost the batch dimension")


def check_dataset_checks(catalog: Catalog, name: str, options: Mapping[str, Any] | None, report: Report, *,
                         backbone: tuple[str, Backbone] | None = None,
                         component: str | None = None) -> DataSource | None:
    """Run every dataset check, recording results; returns the train split (or ``None`` when it cannot open)."""
    from polygraft.options import factory_options

    steps = Steps(report, component or f"dataset {name!r}")
    spec = catalog.get("dataset", name)
    options = {k: v for k, v in dict(options or {}).items() if k != "split"}
    try:
        factory = steps.run("factory imports", spec.load_factory, required=True)

        def takes_split() -> None:
            accepted, open_ended = factory_options(factory)
            require("split" in accepted or open_ended,
                    "the factory must accept split= with the names train / val / test / all")

        steps.run("accepts split", takes_split)
        source = steps.run("opens the train split", lambda: _open(catalog, name, options, "train"), required=True,
                           hint="pass the options it needs (a path to a tiny file, a cache_dir...)")
        examples = steps.run("examples carry the input and target keys",
                             lambda: _check_examples(catalog, spec, source), required=True)
        steps.run("label_names", lambda: _check_label_names(spec, source, examples, steps))
        refused = steps.run("split names train / val / test / all open or refuse clearly",
                            lambda: _check_split_names(catalog, name, options))
        if refused:
            report.results[-1].message = "refused with a clear message: " + "; ".join(refused)
        steps.run("deterministic", lambda: _check_deterministic(catalog, name, options, examples))
        steps.run("skip report", lambda: require(isinstance(source.skip_report(), dict), "skip_report() failed"))

        def picklable() -> None:
            try:
                pickle.dumps(source)
            except Exception as exc:
                raise CheckFailed(f"the source must pickle (DataLoader workers started with 'spawn' copy it): "
                                     f"{type(exc).__name__}: {exc}") from exc

        steps.run("picklable", picklable)
        if backbone is not None:
            steps.run(f"backbone {backbone[0]!r} reads its examples",
                      lambda: _check_with_backbone(backbone[1], examples, getattr(spec, "target", "class")))
    except Abort:
        return None
    return source

"""Conformance checks of one backbone: build, preprocessing, features, layer groups, freezing, export round trip.

Example:
    >>> from polygraft.conformance.backbones import check_backbone_checks
    >>> from polygraft.conformance.report import Report
    >>> from polygraft.plugins import build_catalog
    >>> report = Report("polygraft")
    >>> sequences = [{"x": [[0.0, 1.0, 2.0]] * 2}, {"x": [[1.0, 0.0, 2.0]] * 3}]  # toy yields sequences for them
    >>> backbone, used = check_backbone_checks(build_catalog(autoload=False), "toy", {"in_features": 3}, sequences,
    ...                                        report)
    >>> report.passed
    True
"""

from __future__ import annotations

import inspect
import json
import pickle
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from polygraft.conformance.examples import default_examples, vector_size
from polygraft.conformance.report import CheckFailed, Report
from polygraft.conformance.steps import Abort, Steps, differences, explain, finite_problems, non_json, require

if TYPE_CHECKING:
    from polygraft.interfaces import Backbone
    from polygraft.plugins import Catalog

EXPORT_HINT = ("export(directory) must return JSON-serialisable keyword options that rebuild this backbone through "
               "its factory with weights=None (the default returns build_options, which the factory sets); write "
               "anything else (tensors, vocabularies, fitted statistics) as files into directory and return their paths")


def input_key_of(catalog: Catalog, modality: str) -> str:
    modalities = catalog.registry("modality")
    if modality in modalities:
        return getattr(modalities.get(modality), "input_key", "") or "x"
    return "x"


def _check_factory(spec: Any) -> Any:
    factory = spec.load_factory()
    try:
        parameters = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return factory
    open_ended = any(p.kind is p.VAR_KEYWORD for p in parameters.values())
    require("weights" in parameters or open_ended,
            f"the factory {spec.factory} must accept the keyword weights (a local path or None): "
            "def create(*, weights: str | None = None, ...)")
    return factory


def _check_built(catalog: Catalog, spec: Any, backbone: Any) -> None:
    from polygraft.interfaces import Backbone

    require(isinstance(backbone, Backbone),
            f"the factory returned a {type(backbone).__name__}; return a polygraft.interfaces.Backbone subclass "
            "(modality, feature_dim, preprocessor, forward → Features, layer_groups)")
    require(isinstance(backbone.feature_dim, int) and backbone.feature_dim > 0,
            f"feature_dim must be a positive int (the width of pooled features), got {backbone.feature_dim!r}")
    require(isinstance(backbone.build_options, dict), "build_options must be a dict of the factory's options")


def _check_modality(catalog: Catalog, spec: Any, backbone: Backbone, steps: Steps) -> None:
    declared = catalog.registry("modality")
    require(spec.modality in declared,
            f"modality {spec.modality!r} is not declared; register ModalitySpec(name={spec.modality!r}, "
            "input_key=...) in a polygraft_register_modalities hook")
    if backbone.modality != spec.modality:
        message = (f"the BackboneSpec says modality {spec.modality!r} but the backbone class says "
                   f"{backbone.modality!r}; set modality = {spec.modality!r} on the class")
        require(spec.modality == "any" or backbone.modality == "any", message)
        steps.warn("modality", message)


def _check_preprocessor(backbone: Backbone, examples: Sequence[Mapping[str, Any]]) -> Any:
    from polygraft.interfaces import ListSource, Preprocessor

    pre = backbone.preprocessor
    require(callable(pre) and callable(getattr(pre, "collate", None)),
            "backbone.preprocessor must be a polygraft.interfaces.Preprocessor (__call__ and collate)")
    if isinstance(pre, Preprocessor) and type(pre).fit is not Preprocessor.fit:
        pre.fit(ListSource([dict(e) for e in examples], name="conformance"))
    try:
        copy = pickle.loads(pickle.dumps(pre))
    except Exception as exc:
        raise CheckFailed(f"the preprocessor must pickle (it runs in DataLoader workers): {type(exc).__name__}: "
                             f"{exc}; keep only plain data in it (no lambdas, modules, open files)") from exc
    description = pre.describe()
    bad = non_json(description)
    require(isinstance(description, dict) and not bad,
            f"preprocessor.describe() must return a dict of JSON-friendly settings; not JSON: {bad[:5]}")
    lengths = pre.lengths(list(examples)) if hasattr(pre, "lengths") else None
    require(lengths is None or (len(lengths) == len(examples) and all(isinstance(n, int) for n in lengths)),
            f"preprocessor.lengths(examples) must return one int per example or None, got {lengths!r}")
    training = pre.for_training() if hasattr(pre, "for_training") else pre
    pickle.dumps(training)
    training.collate([training(e) for e in examples[:2]])
    return copy


def _forward(backbone: Backbone, pre: Any, examples: Sequence[Mapping[str, Any]]) -> Any:
    import torch

    from polygraft.features import Features

    batch = pre.collate([pre(example) for example in examples])
    require(isinstance(batch, Mapping), f"preprocessor.collate must return a dict of tensors, got {type(batch).__name__}")
    meta = pre.collate_meta([pre(example) for example in examples]) if hasattr(pre, "collate_meta") else {}
    require(isinstance(meta, Mapping), "preprocessor.collate_meta must return a dict (default {})")
    backbone.eval()
    try:
        with torch.no_grad():
            features = backbone(batch)
    except Exception as exc:
        loose = [key for key, value in batch.items() if isinstance(value, list | tuple)]
        if not loose:
            raise
        raise CheckFailed(f"forward failed on the collated batch ({explain(exc)}); collate returned lists for "
                             f"{loose}: return batched tensors (torch.stack, or pad_sequence plus a mask)") from exc
    require(isinstance(features, Features),
            f"forward must return polygraft.features.Features (e.g. Features(pooled=h)), got {type(features).__name__}")
    return batch, features


def _check_features(spec: Any, backbone: Backbone, features: Any, batch_size: int) -> None:

    produced = {"pooled": features.pooled, "sequence": features.sequence, "maps": features.maps}
    for kind in spec.produces:
        if kind == "pooled":
            continue  # always derivable with Features.pool()
        require(produced[kind] is not None,
                f"the spec promises {kind!r} features but forward did not produce them; return them or drop "
                f"{kind!r} from BackboneSpec.produces")
    for problem in backbone.feature_problems(features, batch_size):
        require(False, problem)
    if features.maps is not None:
        maps = features.maps
        sizes = [fmap.shape[-2] * fmap.shape[-1] for fmap in maps]
        require(sizes == sorted(sizes, reverse=True), "Features.maps must be ordered highest resolution first")
        require(list(backbone.map_strides) == sorted(backbone.map_strides), "map_strides must increase")
        require(features.strides is None or list(features.strides) == list(backbone.map_strides),
                f"Features.strides {features.strides} differ from map_strides {list(backbone.map_strides)}")
    bad = finite_problems(produced)
    require(not bad, f"features hold NaN or infinite values in {bad}; check for divisions by zero, log of 0, "
                     "uninitialised tensors (torch.empty)")


def _check_layer_groups(backbone: Backbone) -> None:
    from torch import nn

    groups = backbone.layer_groups()
    require(isinstance(groups, list | tuple) and len(groups) >= 2,
            "layer_groups() must split the backbone into at least 2 ordered groups (input → output) of nn.Modules")
    require(all(isinstance(g, nn.Module) for g in groups), "every layer group must be an nn.Module")
    names = {id(p): n for n, p in backbone.named_parameters()}
    seen: dict[int, int] = {}
    for index, group in enumerate(groups):
        for parameter in group.parameters():
            require(id(parameter) in names, f"layer group {index} holds a parameter that is not the backbone's")
            require(id(parameter) not in seen, f"parameter {names[id(parameter)]!r} is in layer groups "
                                               f"{seen.get(id(parameter))} and {index}; each belongs to one group")
            seen[id(parameter)] = index
    missing = [n for n, p in backbone.named_parameters() if p.requires_grad and id(p) not in seen]
    require(not missing, f"layer_groups() misses {len(missing)} trainable parameters ({missing[:5]}); freezing and "
                         "layer-wise learning rates would never touch them: add their modules to a group")


def _check_freezing(backbone: Backbone) -> None:
    groups = backbone.layer_groups()
    before = {n: p.requires_grad for n, p in backbone.named_parameters()}
    try:
        backbone.freeze(0)
        require(not any(p.requires_grad for p in backbone.parameters()), "freeze(0) must freeze every parameter")
        backbone.freeze(1)
        require(any(p.requires_grad for p in groups[-1].parameters()) or not list(groups[-1].parameters()),
                "freeze(1) must leave the last layer group trainable")
        require(not any(p.requires_grad for g in groups[:-1] for p in g.parameters()),
                "freeze(1) must freeze every group but the last")
        backbone.unfreeze()
        stuck = [n for n, p in backbone.named_parameters() if before[n] and not p.requires_grad]
        require(not stuck, f"unfreeze() must make trainable again every parameter that was trainable when built; "
                           f"still frozen: {stuck[:5]}")
    finally:
        for name, parameter in backbone.named_parameters():
            parameter.requires_grad_(before[name])


def check_roundtrip(catalog: Catalog, backbone: Backbone, examples: Sequence[Mapping[str, Any]],
                    reference: Any) -> None:
    """Save the backbone as a model directory, ``polygraft.load`` it, and compare preprocessing and features."""
    import torch

    import polygraft
    from polygraft.errors import PolygraftError
    from polygraft.model_io import read_model_config, save_backbone

    with tempfile.TemporaryDirectory(prefix="polygraft-kit-") as tmp:
        directory = Path(tmp) / "model"
        options = backbone.export(Path(tmp) / "probe")
        require(isinstance(options, dict), f"export() must return a dict of options, got {type(options).__name__}")
        bad = non_json(options)
        require(not bad, f"export() returned options JSON cannot store: {bad[:5]}. {EXPORT_HINT}")
        try:
            save_backbone(backbone, directory, objective="conformance-kit")
        except PolygraftError as exc:
            raise CheckFailed(f"{exc}") from exc
        config = read_model_config(directory)
        try:
            rebuilt = polygraft.load(directory, catalog=catalog)
        except Exception as exc:
            raise CheckFailed(f"polygraft.load cannot rebuild the exported backbone: {type(exc).__name__}: {exc}. "
                              f"The options export() returned: {json.dumps(config['backbone']['options'])[:200]}. "
                              f"{EXPORT_HINT}") from exc
        original, again = backbone.preprocessor, rebuilt.preprocessor
        for index, example in enumerate(examples):
            diff = differences(original(example), again(example), atol=1e-6, rtol=1e-5)
            require(not diff, f"the rebuilt preprocessor turns example {index} into different inputs ({diff[:3]}): "
                              "a setting or fitted state (Preprocessor.fit) is lost between export() and the "
                              "factory; return it from export() (or write it as a file)")
        batch = again.collate([again(example) for example in examples])
        with torch.no_grad():
            features = rebuilt(batch)
        diff = differences(reference, {"pooled": features.pool(), "sequence": features.sequence,
                                       "maps": features.maps})
        require(not diff, f"after export → polygraft.load the same weights give different features ({diff[:3]}); "
                          f"{EXPORT_HINT}")


def check_backbone_checks(catalog: Catalog, name: str, options: Mapping[str, Any] | None,
                          examples: Sequence[Mapping[str, Any]] | None, report: Report, *,
                          component: str | None = None) -> tuple[Backbone, list[dict[str, Any]]] | None:
    """Run every backbone check, recording results in ``report``; returns ``(backbone, examples)`` or ``None``."""
    import torch

    from polygraft.api import create_backbone

    steps = Steps(report, component or f"backbone {name!r}")
    spec = catalog.get("backbone", name)
    try:
        steps.run("factory imports", lambda: _check_factory(spec), required=True)
        torch.manual_seed(0)
        def build() -> Any:
            try:
                return create_backbone(name, catalog=catalog, **dict(options or {}))
            except AttributeError as exc:
                if "build_options" not in str(exc):
                    raise
                raise CheckFailed(f"the factory did not return a Backbone ({exc}); return a "
                                     "polygraft.interfaces.Backbone subclass (modality, feature_dim, preprocessor, "
                                     "forward → Features, layer_groups)") from exc

        backbone = steps.run("builds", build, required=True,
                             hint="pass tiny options for this backbone (options={...})")
        steps.run("is a Backbone", lambda: _check_built(catalog, spec, backbone), required=True)
        steps.run("modality", lambda: _check_modality(catalog, spec, backbone, steps))
        if examples is None:
            key = input_key_of(catalog, spec.modality)
            examples = default_examples(key, size=vector_size(backbone))
            if examples is None:
                steps.not_run("features", f"no default examples for input key {key!r}; pass examples=[...] (raw "
                                          "examples as your data source yields them)")
                return None
        examples = [dict(e) for e in examples]
        steps.run("at least two examples", lambda: require(len(examples) >= 2, "give at least 2 raw examples "
                                                           "(batches must have more than one row)"), required=True)
        pre = steps.run("preprocessor", lambda: _check_preprocessor(backbone, examples), required=True)
        batch, features = steps.run("forward returns Features", lambda: _forward(backbone, pre, examples),
                                    required=True) or (None, None)
        steps.run("features: kinds, shapes, batch size, finite",
                  lambda: _check_features(spec, backbone, features, len(examples)), required=True)
        reference = {"pooled": features.pool(), "sequence": features.sequence, "maps": features.maps}

        def deterministic() -> None:
            with torch.no_grad():
                again = backbone(batch)
            diff = differences(reference, {"pooled": again.pool(), "sequence": again.sequence, "maps": again.maps},
                               atol=1e-6, rtol=1e-5)
            require(not diff, f"two forward passes in eval mode differ ({diff[:3]}); randomness (dropout, noise, "
                              "augmentation) must be off in eval mode: use self.training or nn.Dropout")

        steps.run("deterministic in eval mode", deterministic)
        steps.run("batch of one", lambda: _check_features(spec, backbone, _forward(backbone, pre, examples[:1])[1], 1))
        steps.run("layer groups cover every trainable parameter once", lambda: _check_layer_groups(backbone))
        steps.run("freeze / unfreeze", lambda: _check_freezing(backbone))
        steps.run("export → JSON → polygraft.load gives the same preprocessing and features",
                  lambda: check_roundtrip(catalog, backbone, examples, reference))
    except Abort:
        return None
    return backbone, [dict(example) for example in examples]

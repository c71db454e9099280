"""``--format timm``: an image classifier as timm's own Hugging Face layout, ``config.json`` (architecture,
num_classes, label_names, pretrained_cfg with input size, interpolation, crop and normalisation) and
``model.safetensors``, written by ``timm.models.save_for_hf``, so ``timm.create_model("local-dir:DIR",
pretrained=True)`` rebuilds it and ``timm.data.create_transform(**timm.data.resolve_data_config(model=model))``
gives its preprocessing.

polygraft's classification head (a linear layer on timm's pooled pre-logits) becomes the timm model's own
classifier, so the rebuilt model's logits equal polygraft's (checked on export, max |diff| ≤ 1e-5). Only a
``timm`` backbone with ``features: pooled`` under the ``classification`` task fits; anything else is an
:class:`~polygraft.errors.ExportError` pointing to ``--format onnx``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from polygraft.errors import ExportError

TOLERANCE = 1e-5


def build_timm_classifier(task: Any) -> torch.nn.Module:
    """The timm model with polygraft's head as its classifier (same architecture arguments, same weights)."""
    import timm

    backbone = task.backbone
    if task.spec_name != "classification" or backbone.spec_name != "timm" or backbone.features != "pooled":
        raise ExportError(f"--format timm holds timm image classifiers (task 'classification' on backbone 'timm' with "
                          f"features: pooled); this is {task.spec_name!r} on {backbone.spec_name!r}: use --format onnx")
    kwargs = dict(backbone.build_options.get("model_kwargs") or {})
    model = timm.create_model(backbone.model_name, num_classes=task.num_classes, **kwargs)
    classifier = model.get_classifier()
    if not isinstance(classifier, torch.nn.Linear):
        raise ExportError(f"timm model {backbone.model_name!r} has a {type(classifier).__name__} classifier, not one "
                          "linear layer polygraft's head can become; use --format onnx")
    names = {name for name, _ in model.named_parameters() if not any(
        name.startswith(prefix) for prefix in _classifier_prefixes(model))}
    own = backbone.model.state_dict()
    state = {k: v for k, v in own.items() if k in model.state_dict()}
    missing = sorted(n for n in names if n not in state)
    if missing:
        raise ExportError(f"timm model {backbone.model_name!r}: {len(missing)} weights of the classifier model are not "
                          f"in polygraft's backbone ({missing[:4]}); use --format onnx")
    model.load_state_dict(state, strict=False)
    with torch.no_grad():
        classifier.weight.copy_(task.head.linear.weight)
        classifier.bias.copy_(task.head.linear.bias)
    return model.eval()


def _classifier_prefixes(model: torch.nn.Module) -> list[str]:
    names = model.pretrained_cfg.get("classifier") or ()
    return [names] if isinstance(names, str) else list(names)


def export_timm(task: Any, directory: Path, examples: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Write ``config.json`` + ``model.safetensors`` with ``timm.models.save_for_hf``; load it back and compare."""
    import timm
    from timm.models import save_for_hf

    from polygraft.export.onnx_export import outputs_of
    from polygraft.export.samples import collate

    model = build_timm_classifier(task)
    pre = task.backbone.preprocessor
    data_config = {"input_size": list(pre.input_size), "mean": list(pre.mean), "std": list(pre.std),
                   "interpolation": pre.interpolation, "crop_pct": pre.crop_pct, "crop_mode": pre.crop_mode}
    save_for_hf(model, str(directory), model_config={"label_names": list(task.label_names)},
                data_config=data_config, safe_serialization=True)
    loaded = timm.create_model(f"local-dir:{directory}", pretrained=True).eval()
    batch = collate(task, examples)
    reference = outputs_of(task, batch["inputs"])["logits"]
    with torch.no_grad():
        got = loaded(batch["inputs"]["pixel_values"])
    diff = float((got - reference).abs().max())
    if not diff <= TOLERANCE:
        raise ExportError(f"{directory}: timm's rebuilt model differs from polygraft's by {diff:.3g} (> {TOLERANCE:g}); "
                          "use --format onnx")
    resolved = timm.data.resolve_data_config(model=loaded)
    return {"tolerance": TOLERANCE, "max_abs_diff": diff, "architecture": task.backbone.model_name,
            "checks": [f"timm.create_model('local-dir:DIR', pretrained=True) on {len(examples)} sample images: max "
                       f"|logit diff| vs polygraft {diff:.2e} (≤ {TOLERANCE:g})",
                       f"its data config: input_size {list(resolved['input_size'])}, mean {list(resolved['mean'])}, "
                       f"std {list(resolved['std'])}, crop_pct {resolved['crop_pct']}"]}

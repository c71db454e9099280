"""Integrated Gradients (Sundararajan et al. 2017) with captum, checked for completeness on every explanation.

Float inputs (pixels, log-mel spectrograms, waveforms, feature vectors) go through captum's
``IntegratedGradients``; token inputs through ``LayerIntegratedGradients`` on the embedding layer the backbone
declares, from a baseline that replaces every word with the padding id and keeps the special tokens. The
attributions of one example sum to ``f(x) - f(baseline)`` when the path integral is computed exactly; captum's
convergence delta measures the gap, and the number of steps is doubled (from 32, up to ``max_steps``) until the
delta is within ``tolerance`` (5%) of ``f(x) - f(baseline)``. Every explanation reports it.

Example:
    >>> import polygraft
    >>> from polygraft.explain import explain
    >>> task = polygraft.create_task("classification", backbone="toy", num_classes=2,
    ...                              backbone_options={"in_features": 3}).eval()
    >>> explain(task, {"x": [1.0, 0.0, 2.0]}, method="occlusion").attributions[0].method
    'occlusion'
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from polygraft.explain.registry import Explainer, RawAttribution, Settings, register_explainer

if TYPE_CHECKING:
    from polygraft.explain.subject import Subject
    from polygraft.explain.tasks import Target

FIRST_STEPS = 32
ACTIVATION_BUDGET = 2_000_000  # input elements per internal batch (interpolation steps run in chunks of this)


def internal_batch(x: torch.Tensor, steps: int, wanted: int | None) -> int:
    return max(1, min(steps, wanted or ACTIVATION_BUDGET // max(1, x[0].numel())))


def completeness(delta: float, f_input: float, f_baseline: float, steps: int, tolerance: float) -> dict[str, float]:
    """The completeness report: captum's delta and how it compares with ``f(x) - f(baseline)``."""
    gap = f_input - f_baseline
    relative = abs(delta) / abs(gap) if gap != 0 else (0.0 if delta == 0 else float("inf"))
    return {"delta": delta, "f_input": f_input, "f_baseline": f_baseline, "gap": gap, "relative_delta": relative,
            "steps": steps, "tolerance": tolerance,
            "within_tolerance": bool(relative <= tolerance or abs(delta) < 1e-6)}


class IntegratedGradients(Explainer):
    name = "integrated-gradients"
    aliases = ("ig",)
    requires = (("captum", "captum==0.9.0"),)
    summary = ("captum IntegratedGradients on the input (LayerIntegratedGradients on the token embeddings); "
               "completeness checked")

    def applies(self, subject: Subject) -> str | None:
        if not subject.declared:
            return "its backbone declares no attribution hooks, so there is no known baseline or embedding layer"
        if subject.hooks.kind == "tokens":
            return None if subject.hooks.embedding is not None else "its backbone declares no embedding layer"
        return None if subject.x.is_floating_point() else "its attributed input is not floating point"

    def attribute(self, subject: Subject, target: Target, settings: Settings) -> RawAttribution:
        from captum.attr import IntegratedGradients as CaptumIG
        from captum.attr import LayerIntegratedGradients

        forward = subject.forward_for(target.value)
        x, baseline, others = subject.x, subject.baseline(), subject.others
        if subject.hooks.kind == "tokens":
            method = LayerIntegratedGradients(forward, subject.hooks.embedding)
        else:
            method = CaptumIG(forward)
        with torch.no_grad():
            f_input = float(forward(x, *others)[0])
            f_baseline = float(forward(baseline, *others)[0])
        steps = settings.steps or FIRST_STEPS
        while True:
            with torch.enable_grad():
                values, delta = method.attribute(x, baselines=baseline, additional_forward_args=others or None,
                                                 n_steps=steps, internal_batch_size=internal_batch(
                                                     x, steps, settings.batch_size),
                                                 return_convergence_delta=True)
            report = completeness(float(delta.sum()), f_input, f_baseline, steps, settings.tolerance)
            if report["within_tolerance"] or steps * 2 > settings.max_steps:
                break
            steps *= 2
        notes = [] if report["within_tolerance"] else [
            f"completeness not reached in {steps} steps (relative delta {report['relative_delta']:.3f}); pass "
            "--steps with more steps"]
        return RawAttribution(values=values[0].detach(), completeness=report, notes=notes)


register_explainer(IntegratedGradients())

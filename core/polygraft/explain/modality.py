"""How much each modality of a fused model contributed: ablation and exact Shapley values over its branches.

Both methods apply only to the ``fusion`` backbone (:mod:`polygraft.fusion`). They take branches away the way the
model itself meets a missing field: the branch's presence mask is set to ``False`` and its input is left out of
the batch, so the fusion layers use the branch's learned "missing" embedding (what ``modality_dropout`` trained
for). The explained value is the target's log-probability, as for the other methods.

* ``modality-ablation``: per branch, ``f(input) - f(input without that branch)`` (one forward pass per branch,
  plus one for the input).
* ``modality-shapley``: exact Shapley values with ``v(S) = f(only the branches in S)``, over the branches this
  input has (``2**n`` forward passes for ``n`` of them; at most :data:`MAX_SHAPLEY_BRANCHES`). They sum to
  ``f(input) - f(no branch)`` (efficiency), which is checked and reported like Integrated Gradients'
  completeness.

A branch the input does not have contributes 0 in both (nothing to take away) and is named in the notes.

Example:
    >>> from polygraft.explain.modality import shapley_values
    >>> values = {(): 0.0, ("a",): 3.0, ("b",): 1.0, ("a", "b"): 4.0}
    >>> shapley_values(["a", "b"], lambda kept: values[tuple(kept)])
    {'a': 3.0, 'b': 1.0}
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import torch

from polygraft.explain.registry import Explainer, RawAttribution, Settings, register_explainer

if TYPE_CHECKING:
    from polygraft.explain.subject import Subject
    from polygraft.explain.tasks import Target

MAX_SHAPLEY_BRANCHES = 8
"""Exact Shapley values cost ``2**n`` forward passes: more present branches than this are refused."""

KIND = "modality"
"""The ``kind`` of an explanation by these methods: one value per branch, drawn as bars."""


def branch_names(subject: Subject) -> list[str] | None:
    """The branches of a fusion backbone in their order, or ``None`` for any other backbone."""
    from polygraft.fusion.backbone import FusionBackbone

    backbone = subject.task.backbone
    if not isinstance(backbone, FusionBackbone) or "present" not in subject.inputs:
        return None
    return list(backbone.branches)


def present_branches(subject: Subject) -> list[str]:
    """The branches this input has (its presence mask), in branch order."""
    present = subject.inputs["present"]
    return [name for name in branch_names(subject) or [] if bool(present[name][0])]


def with_branches(subject: Subject, kept: Sequence[str]) -> dict[str, Any]:
    """The subject's inputs with every branch outside ``kept`` missing, as the fused preprocessor collates a field
    that is missing: its presence mask ``False`` and its input left out."""
    inputs = subject.inputs
    present = {name: mask if name in kept else torch.zeros_like(mask) for name, mask in inputs["present"].items()}
    given = {name: value for name, value in inputs.get("branches", {}).items() if name in kept}
    return {**inputs, "present": present, "branches": given}


def scorer(subject: Subject, target: Target) -> Callable[[Sequence[str]], float]:
    """``v(kept)``: the target's value with only the branches in ``kept`` (no gradients; each subset is run once)."""
    seen: dict[frozenset[str], float] = {}

    def value(kept: Sequence[str]) -> float:
        key = frozenset(kept)
        if key not in seen:
            with torch.no_grad():
                seen[key] = float(target.value(subject.adapter.forward(with_branches(subject, kept)))[0])
        return seen[key]

    return value


def shapley_values(players: Sequence[str], value: Callable[[Sequence[str]], float]) -> dict[str, float]:
    """Exact Shapley values of ``players`` for the set function ``value`` (called once per subset, in player
    order): ``phi_i = sum over S not holding i of |S|! (n - |S| - 1)! / n! * (v(S + i) - v(S))``."""
    n = len(players)
    values = {subset: value([players[i] for i in subset])
              for size in range(n + 1) for subset in itertools.combinations(range(n), size)}
    phi = dict.fromkeys(players, 0.0)
    for i, player in enumerate(players):
        for subset, without in values.items():
            if i in subset:
                continue
            weight = math.factorial(len(subset)) * math.factorial(n - len(subset) - 1) / math.factorial(n)
            with_i = tuple(sorted((*subset, i)))
            phi[player] += weight * (values[with_i] - without)
    return phi


class _ModalityExplainer(Explainer):
    output_kind = KIND

    def applies(self, subject: Subject) -> str | None:
        if branch_names(subject) is None:
            return "it is not a fusion backbone (modality contributions compare the branches of a fused model)"
        return None

    def _units(self, subject: Subject, scores: dict[str, float]) -> tuple[torch.Tensor, list[str], list[str]]:
        names = branch_names(subject) or []
        absent = [name for name in names if name not in present_branches(subject)]
        notes = [f"branch {', '.join(absent)} is missing in this input (its learned missing embedding was used): "
                 "it contributes 0"] if absent else []
        values = torch.tensor([scores.get(name, 0.0) for name in names], dtype=torch.float64)
        return values, names, notes


class ModalityAblation(_ModalityExplainer):
    name = "modality-ablation"
    aliases = ("ablation",)
    summary = "per branch: the drop of the target's log-probability when the branch is replaced by its learned " \
              "missing embedding"

    def attribute(self, subject: Subject, target: Target, settings: Settings) -> RawAttribution:
        value = scorer(subject, target)
        present = present_branches(subject)
        full = value(present)
        without = {name: value([other for other in present if other != name]) for name in present}
        values, names, notes = self._units(subject, {name: full - v for name, v in without.items()})
        return RawAttribution(values=values, unit_level=True, units=names, notes=notes,
                              info={"f_input": full, "f_without": without, "forward_passes": len(present) + 1,
                                    "absent_branches": [name for name in names if name not in present]})


class ModalityShapley(_ModalityExplainer):
    name = "modality-shapley"
    aliases = ("shapley",)
    summary = "exact Shapley values over the branches (missing = the learned missing embedding); they sum to " \
              "f(input) - f(no branch)"

    def applies(self, subject: Subject) -> str | None:
        reason = super().applies(subject)
        if reason is None and len(present_branches(subject)) > MAX_SHAPLEY_BRANCHES:
            return (f"this input has {len(present_branches(subject))} branches and exact Shapley values take "
                    f"2**n forward passes (at most {MAX_SHAPLEY_BRANCHES} branches); use modality-ablation")
        return reason

    def attribute(self, subject: Subject, target: Target, settings: Settings) -> RawAttribution:
        from polygraft.explain.integrated_gradients import completeness

        value = scorer(subject, target)
        present = present_branches(subject)
        phi = shapley_values(present, value)
        full, nothing = value(present), value([])  # already computed: every subset is run once
        values, names, notes = self._units(subject, phi)
        passes = 2 ** len(present)
        report = completeness(float(values.sum()) - (full - nothing), full, nothing, passes, settings.tolerance)
        report["passes"] = report.pop("steps")
        return RawAttribution(values=values, unit_level=True, units=names, notes=notes, completeness=report,
                              info={"f_input": full, "f_no_branch": nothing, "forward_passes": passes,
                                    "absent_branches": [name for name in names if name not in present]})


register_explainer(ModalityAblation())
register_explainer(ModalityShapley())

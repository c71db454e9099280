"""Open-set verification and retrieval metrics from embeddings: ROC-AUC, equal error rate, TAR@FAR, rank-1.

Every pair ``i < j`` of the evaluated examples is a trial: its score is the cosine similarity of the two
embeddings, its truth whether both carry the same identity. From the ROC of those trials (computed exactly, in
float64, with tied scores grouped into one threshold as scikit-learn's ``roc_curve`` does):

- ``roc_auc``: area under the ROC curve (trapezoids);
- ``eer``: the equal error rate, where the false-accept rate equals the false-reject rate on the piecewise-linear
  ROC curve (the ``brentq`` root of ``1 - x - tpr(x)`` that speaker-verification toolkits compute);
- ``tar_at_far``: the highest true-accept rate whose false-accept rate is at most the target (``1e-2``);
- ``eer_threshold``: a score threshold at the EER operating point (the midpoint between the two scores the
  crossing lies between), what ``polygraft predict RUN a b`` compares a pair's score with.

Rank-1 retrieval: each example is a query against all the others; it is correct when its nearest neighbour (highest
cosine similarity, the query itself excluded) has its identity. Queries whose identity has no other example cannot
be answered and are left out (and counted).

Example:
    >>> import torch
    >>> from polygraft.tasks.verification_metrics import verification_metrics
    >>> embeddings = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    >>> metrics = verification_metrics(embeddings, torch.tensor([0, 0, 1, 1]))
    >>> metrics["roc_auc"], metrics["eer"], metrics["rank1"]
    (1.0, 0.0, 1.0)
"""

from __future__ import annotations

from typing import Any

import torch
from torch.nn import functional as F

from polygraft.errors import DataError


def pair_trials(embeddings: torch.Tensor, identities: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(scores, same)`` for every pair ``i < j``: cosine similarities (float64) and same-identity flags."""
    normalised = F.normalize(embeddings.double(), dim=1)
    similarity = normalised @ normalised.T
    rows, cols = torch.triu_indices(len(identities), len(identities), offset=1, device=embeddings.device)
    return similarity[rows, cols], identities[rows] == identities[cols]


def roc_points(scores: torch.Tensor, positive: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(fpr, tpr, thresholds)`` at every distinct score (descending), starting from ``(0, 0, +inf)``.

    A trial is accepted when its score is ``>= threshold``; tied scores move together.
    """
    order = torch.argsort(scores, descending=True, stable=True)
    scores, positive = scores[order].double(), positive[order].double()
    last_of_value = torch.nonzero(scores[1:] != scores[:-1]).flatten()
    ends = torch.cat([last_of_value, torch.tensor([len(scores) - 1], device=scores.device)])
    true_accepts = torch.cumsum(positive, 0)[ends]
    false_accepts = (ends + 1).double() - true_accepts
    zero = torch.zeros(1, dtype=torch.float64, device=scores.device)
    tpr = torch.cat([zero, true_accepts / max(float(positive.sum()), 1.0)])
    fpr = torch.cat([zero, false_accepts / max(float(len(positive) - positive.sum()), 1.0)])
    thresholds = torch.cat([torch.full((1,), float("inf"), dtype=torch.float64, device=scores.device), scores[ends]])
    return fpr, tpr, thresholds


def equal_error_rate(fpr: torch.Tensor, tpr: torch.Tensor, thresholds: torch.Tensor) -> tuple[float, float]:
    """``(eer, threshold)``: where ``fpr == 1 - tpr`` on the piecewise-linear ROC, and a threshold there."""
    gap = (1.0 - tpr) - fpr  # false rejects minus false accepts: starts at 1, ends at -1
    after = int(torch.nonzero(gap <= 0).flatten()[0])
    before = after - 1
    if float(gap[after]) == 0.0 or before < 0 or float(fpr[after]) == float(fpr[before]):
        eer = float(fpr[after])
    else:  # solve 1 - x = tpr(x) on the segment, tpr linear in x
        slope = float((tpr[after] - tpr[before]) / (fpr[after] - fpr[before]))
        eer = float((1.0 - tpr[before] + slope * fpr[before]) / (1.0 + slope))
    low = float(thresholds[after])
    high = float(thresholds[before]) if before >= 0 else low
    threshold = low if high == float("inf") or float(gap[after]) == 0.0 else (low + high) / 2
    return eer, threshold


def tar_at_far(fpr: torch.Tensor, tpr: torch.Tensor, far: float) -> float:
    """The highest true-accept rate at a threshold whose false-accept rate is at most ``far``."""
    return float(tpr[fpr <= far + 1e-12].max())


def rank1_accuracy(embeddings: torch.Tensor, identities: torch.Tensor) -> tuple[float, int]:
    """``(accuracy, queries)``: nearest-neighbour identification over queries whose identity occurs twice or more."""
    normalised = F.normalize(embeddings.double(), dim=1)
    similarity = normalised @ normalised.T
    similarity.fill_diagonal_(float("-inf"))
    nearest = similarity.argmax(dim=1)
    same = identities[:, None] == identities[None, :]
    answerable = same.sum(dim=1) > 1
    queries = int(answerable.sum())
    if queries == 0:
        return float("nan"), 0
    correct = identities[nearest] == identities
    return float(correct[answerable].double().mean()), queries


def verification_metrics(embeddings: torch.Tensor, identities: torch.Tensor, *, far: float = 1e-2,
                         threshold: float | str | None = None) -> dict[str, Any]:
    """Every metric of the module docstring for ``(N, D)`` embeddings and ``(N,)`` integer identities.

    With ``threshold`` (a score, such as the one chosen on validation, or ``"eer"`` for this data's own EER
    threshold) the false-accept and false-reject rates and the pair accuracy at it are added. Raises DataError when the trials hold no same-identity pair or no different-identity pair.
    """
    if len(identities) < 2:
        raise DataError(f"verification needs at least two examples to compare, got {len(identities)}")
    scores, same = pair_trials(embeddings, identities)
    positives, negatives = int(same.sum()), int((~same).sum())
    if positives == 0 or negatives == 0:
        missing = "two examples of one identity" if positives == 0 else "two different identities"
        raise DataError(f"the evaluation data holds no pair of {missing}: verification needs same-identity and "
                        f"different-identity pairs (got {len(identities)} examples of "
                        f"{len(torch.unique(identities))} identities)")
    fpr, tpr, thresholds = roc_points(scores, same)
    eer, eer_threshold = equal_error_rate(fpr, tpr, thresholds)
    rank1, queries = rank1_accuracy(embeddings, identities)
    counts = torch.unique(identities, return_counts=True)[1]
    metrics: dict[str, Any] = {
        "roc_auc": float(torch.trapezoid(tpr, fpr)), "eer": eer, "tar_at_far": tar_at_far(fpr, tpr, far),
        "rank1": rank1, "eer_threshold": eer_threshold, "pairs_same": positives, "pairs_different": negatives,
        "rank1_queries": queries, "identities": len(counts),
        "single_example_identities": int((counts == 1).sum()),
    }
    if threshold is not None:
        threshold = eer_threshold if threshold == "eer" else float(threshold)
        accepted = scores >= threshold
        metrics["far_at_threshold"] = float((accepted & ~same).sum()) / negatives
        metrics["frr_at_threshold"] = float((~accepted & same).sum()) / positives
        metrics["accuracy_at_threshold"] = float((accepted == same).double().mean())
    return metrics

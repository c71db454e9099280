"""Sanity checks for attribution maps: does a map point at what decides the prediction?

* completeness (Integrated Gradients): reported by the explainer itself (``Attribution.completeness``);
* :func:`pointing_hit`: the pointing game (Zhang et al. 2016): is the map's maximum inside the object's box?
* :func:`deletion`: removing the top-attributed fraction of units (words, pixels, time-frequency cells, frames)
  must lower the explained probability more than removing as many random units;
* :func:`randomised_copy` + :func:`rank_correlation`: model randomisation (Adebayo et al. 2018): a map that
  stays the same when the backbone's weights are re-initialised does not explain the trained model.

Example:
    >>> import numpy as np
    >>> from polygraft.explain.checks import pointing_hit, rank_correlation
    >>> scores = np.zeros((8, 8)); scores[2, 5] = 1.0
    >>> pointing_hit(scores, [4, 1, 7, 3]), pointing_hit(scores, [0, 0, 3, 3])
    (True, False)
    >>> round(rank_correlation(np.arange(5.0), np.arange(5.0) ** 2), 3)
    1.0
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:
    from polygraft.explain.api import Explanation
    from polygraft.interfaces.task import Task


def pointing_hit(scores: np.ndarray, box: Sequence[float], *, tolerance: float = 0.0) -> bool:
    """Whether the maximum of a 2-D map lies in ``box`` (``[x0, y0, x1, y1]`` in map cells, end-exclusive),
    widened by ``tolerance`` cells on every side."""
    row, column = np.unravel_index(int(np.argmax(scores)), scores.shape)
    x0, y0, x1, y1 = box
    return bool(x0 - tolerance <= column < x1 + tolerance and y0 - tolerance <= row < y1 + tolerance)


def rank_correlation(first: np.ndarray, second: np.ndarray) -> float:
    """Spearman's rank correlation of two maps of the same shape (scipy); NaN when either map is constant (a
    re-initialised network whose output no longer depends on its input gives one): undefined, not "different"."""
    from scipy.stats import spearmanr

    a, b = np.asarray(first, dtype=np.float64).ravel(), np.asarray(second, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"maps differ in shape: {first.shape} vs {second.shape}")
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(spearmanr(a, b).statistic)


def deletion(explanation: Explanation, *, fraction: float = 0.2, seed: int = 0, index: int = 0,
             cell: int = 1) -> dict[str, float]:
    """Probability of one explained output before and after removing (setting to the baseline) the top
    ``fraction`` of units by attribution, and as many random units.

    Units are the map's own (words, features, frames, pixels or time-frequency cells); ``cell > 1`` groups a 2-D
    map into square cells of ``cell`` x ``cell`` (ranked by their mean score), so that the random removal takes
    whole patches rather than scattered pixels. Returns ``{"before", "after_top", "after_random", "drop_top",
    "drop_random"}``.
    """
    subject = explanation.subject
    attribution = explanation.attributions[index]
    target = attribution.source
    if target is None:
        raise ValueError("this attribution keeps no scoring function; make it with polygraft.explain.explain")
    scores = np.asarray(attribution.scores, dtype=np.float64)
    grouped = _cells(scores, cell) if cell > 1 and scores.ndim == 2 else scores
    flat = grouped.ravel()
    count = max(1, math.ceil(fraction * flat.size))
    top = np.zeros(flat.size, dtype=bool)
    top[np.argsort(-flat, kind="stable")[:count]] = True
    random = np.zeros(flat.size, dtype=bool)
    random[np.random.default_rng(seed).choice(flat.size, size=count, replace=False)] = True

    def expand(mask: np.ndarray) -> np.ndarray:
        mask = mask.reshape(grouped.shape)
        if grouped.shape == scores.shape:
            return mask
        return np.kron(mask, np.ones((cell, cell), dtype=bool))[: scores.shape[0], : scores.shape[1]]

    with torch.no_grad():
        before = float(target.probability(subject.outputs(subject.x))[0])
        after_top = float(target.probability(subject.outputs(subject.removed(expand(top))))[0])
        after_random = float(target.probability(subject.outputs(subject.removed(expand(random))))[0])
    return {"before": before, "after_top": after_top, "after_random": after_random,
            "drop_top": before - after_top, "drop_random": before - after_random}


def _cells(scores: np.ndarray, cell: int) -> np.ndarray:
    """Mean of each ``cell`` x ``cell`` block of a 2-D map (the last, partial blocks included)."""
    rows, columns = math.ceil(scores.shape[0] / cell), math.ceil(scores.shape[1] / cell)
    padded = np.full((rows * cell, columns * cell), np.nan)
    padded[: scores.shape[0], : scores.shape[1]] = scores
    return np.nanmean(padded.reshape(rows, cell, columns, cell), axis=(1, 3))


def randomised_copy(task: Task, *, seed: int = 0) -> Task:
    """A copy of ``task`` whose backbone weights are re-initialised (each module's ``reset_parameters``), the
    head kept: the cascading-randomisation check's last step. Buffers with statistics (batch norm) are reset too."""
    copied = copy.deepcopy(task)
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        reset = 0
        for module in copied.backbone.modules():
            if hasattr(module, "reset_parameters") and any(True for _ in module.parameters(recurse=False)):
                module.reset_parameters()
                reset += 1
            elif hasattr(module, "reset_running_stats"):
                module.reset_running_stats()
    finally:
        torch.random.set_rng_state(generator_state)
    if not reset:
        raise ValueError("no module of this backbone has reset_parameters(); it cannot be re-initialised")
    return copied.eval()

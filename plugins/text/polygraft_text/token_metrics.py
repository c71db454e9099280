"""What the token-predicting objectives (``mlm``, ``clm``) count during validation: the summed cross-entropy, the
correct predictions and the predicted tokens, reduced across ranks under torch.distributed.

Example:
    >>> import torch
    >>> from polygraft.interfaces import StepOutput
    >>> tally = TokenPredictionMetrics()
    >>> tally.reset_metrics()
    >>> logits = torch.tensor([[2.0, 0.0], [0.0, 2.0]])
    >>> tally.update_metrics({}, StepOutput(loss=torch.tensor(0.0),
    ...                                     outputs={"logits": logits, "target": torch.tensor([0, 0])}))
    >>> loss_sum, correct, count = tally.token_totals()
    >>> (round(loss_sum, 3), correct, count)
    (2.254, 1.0, 2.0)
"""

from __future__ import annotations

from typing import Any

import torch
from torch.nn import functional as F

from polygraft.interfaces import StepOutput


class TokenPredictionMetrics:
    """Mixin of an objective whose step outputs are ``{"logits": (N, V), "target": (N,)}`` over the predicted
    tokens only: ``update_metrics`` and ``reset_metrics``, and ``token_totals()`` for ``compute_metrics``."""

    _loss_sum: float
    _correct: int
    _count: int

    def update_metrics(self, batch: Any, output: StepOutput) -> None:
        target = output.outputs["target"]
        if target.numel() == 0:
            return
        logits = output.outputs["logits"].detach().float()
        self._loss_sum += float(F.cross_entropy(logits, target, reduction="sum"))
        self._correct += int((logits.argmax(-1) == target).sum())
        self._count += int(target.numel())

    def reset_metrics(self) -> None:
        self._loss_sum, self._correct, self._count = 0.0, 0, 0

    def token_totals(self) -> tuple[float, float, float]:
        """``(summed loss, correct, tokens)`` since the last reset, summed over ranks under torch.distributed (a
        collective then: every rank must call it)."""
        import torch.distributed as dist

        sums = torch.tensor([self._loss_sum, float(self._correct), float(self._count)], dtype=torch.float64)
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            parameters = getattr(self, "parameters", None)
            on_gpu = dist.get_backend() == "nccl" and parameters is not None
            device = next(parameters()).device if on_gpu else torch.device("cpu")
            sums = sums.to(device)
            dist.all_reduce(sums)
            sums = sums.cpu()
        loss_sum, correct, count = (float(v) for v in sums)
        return loss_sum, correct, count

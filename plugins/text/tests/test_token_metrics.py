"""The token-predicting objectives' validation metrics are summed over ranks (mlm's were each rank's own share)."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from polygraft.interfaces import StepOutput
from polygraft_text.token_metrics import TokenPredictionMetrics


def _rank(rank: int, init_file: str, results: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    try:
        tally = TokenPredictionMetrics()
        tally.reset_metrics()
        logits = torch.tensor([[3.0, 0.0]] * (rank + 1))  # rank 0: 1 token, rank 1: 2 tokens
        target = torch.tensor([0] * (rank + 1)) if rank == 0 else torch.tensor([0, 1])
        tally.update_metrics({}, StepOutput(loss=torch.tensor(0.0), outputs={"logits": logits, "target": target}))
        totals = tally.token_totals()
        Path(results, f"{rank}.txt").write_text(" ".join(str(v) for v in totals))
    finally:
        dist.destroy_process_group()


def test_totals_are_summed_over_ranks(tmp_path: Path) -> None:
    mp.spawn(_rank, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    seen = [tuple(float(v) for v in (tmp_path / f"{r}.txt").read_text().split()) for r in (0, 1)]
    assert seen[0] == seen[1]  # every rank reports the same, whole-split numbers
    loss_sum, correct, count = seen[0]
    assert count == 3 and correct == 2  # 1 + 2 tokens; rank 1's second token is wrong
    expected = float(torch.nn.functional.cross_entropy(torch.tensor([[3.0, 0.0]] * 3), torch.tensor([0, 0, 1]),
                                                       reduction="sum"))
    assert abs(loss_sum - expected) < 1e-6


def test_both_objectives_count_with_it() -> None:
    from polygraft_text.clm import CausalLanguageModeling
    from polygraft_text.mlm import MaskedLanguageModeling

    assert issubclass(MaskedLanguageModeling, TokenPredictionMetrics)
    assert issubclass(CausalLanguageModeling, TokenPredictionMetrics)

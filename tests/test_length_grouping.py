"""Length-grouped training batches and length-ordered evaluation (trainer.group_by_length)."""

from __future__ import annotations

import random

import pytest
import torch

import polygraft
from polygraft.errors import ConfigError
from polygraft.inputs.samplers import LengthGroupedSampler, ResumableSampler, ShardSampler
from polygraft.interfaces import ListSource
from polygraft.training.config import TrainerConfig

_rng = random.Random(0)
LENGTHS = [_rng.randint(3, 60) for _ in range(203)]


def batches(order: list[int], size: int) -> list[list[int]]:
    return [order[i : i + size] for i in range(0, len(order), size)]


def padding(order: list[int], size: int) -> int:
    """Padded positions when each batch is padded to its longest example."""
    return sum(max(LENGTHS[i] for i in b) * len(b) - sum(LENGTHS[i] for i in b) for b in batches(order, size))


def test_an_epoch_is_a_permutation_with_far_less_padding_than_random_batches() -> None:
    grouped = LengthGroupedSampler(LENGTHS, batch_size=8, rank=0, world_size=1, seed=3, drop_last=False,
                                   megabatch_factor=5)
    plain = ResumableSampler(len(LENGTHS), rank=0, world_size=1, shuffle=True, seed=3, drop_last=False)
    order = list(grouped)
    assert sorted(order) == list(range(len(LENGTHS)))
    assert padding(order, 8) < 0.25 * padding(list(plain), 8)
    assert len(batches(order, 8)[-1]) == len(LENGTHS) % 8  # the partial batch stays last


def test_order_depends_on_seed_and_epoch_only() -> None:
    def order(seed: int, epoch: int) -> list[int]:
        sampler = LengthGroupedSampler(LENGTHS, batch_size=8, rank=0, world_size=1, seed=seed, drop_last=False)
        sampler.set_epoch(epoch)
        return list(sampler)

    assert order(0, 1) == order(0, 1)
    assert order(0, 1) != order(0, 2)
    assert order(0, 1) != order(1, 1)


def test_resuming_skips_exactly_the_consumed_samples() -> None:
    sampler = LengthGroupedSampler(LENGTHS, batch_size=8, rank=0, world_size=1, seed=0, drop_last=False)
    sampler.set_position(2, 0)
    full = list(sampler)
    sampler.set_position(2, 24)
    assert list(sampler) == full[24:]
    assert len(sampler) == len(full) - 24


@pytest.mark.parametrize("drop_last", [False, True])
def test_ranks_share_length_groups_and_cover_the_data(drop_last: bool) -> None:
    ranks = [LengthGroupedSampler(LENGTHS, batch_size=4, rank=r, world_size=2, seed=0, drop_last=drop_last)
             for r in range(2)]
    orders = [list(s) for s in ranks]
    assert len(orders[0]) == len(orders[1])
    seen = set(orders[0]) | set(orders[1])
    assert seen == set(range(len(LENGTHS))) if not drop_last else len(seen) == 2 * (len(LENGTHS) // 2)
    # the k-th batch of each rank comes from the same global batch, so their lengths are close
    full = [(a, b) for a, b in zip(batches(orders[0], 4), batches(orders[1], 4), strict=True) if len(a) == 4]
    spread = [max(LENGTHS[i] for i in a + b) - min(LENGTHS[i] for i in a + b) for a, b in full]
    assert sum(spread) / len(spread) < 10  # random batches of 8 from 3..60 spread by ~45


def test_evaluation_shards_run_longest_first_and_keep_their_members() -> None:
    for rank in range(2):
        shard = list(ShardSampler(len(LENGTHS), rank=rank, world_size=2, lengths=LENGTHS))
        assert sorted(shard) == list(range(rank, len(LENGTHS), 2))
        assert [LENGTHS[i] for i in shard] == sorted((LENGTHS[i] for i in shard), reverse=True)


def test_group_by_length_without_lengths_is_a_config_error() -> None:
    task = polygraft.create_task("classification", backbone="toy", label_names=["a", "b"],
                                 backbone_options={"in_features": 2})
    data = ListSource([{"x": [0.0, 1.0], "label": "a"}, {"x": [1.0, 0.0], "label": "b"}] * 4)
    trainer = polygraft.Trainer(TrainerConfig(max_steps=1, batch_size=2, progress=False, device="cpu",
                                              group_by_length=True))
    with pytest.raises(ConfigError, match="group_by_length"):
        trainer.fit(task, train_data=data)
    assert torch.is_grad_enabled()

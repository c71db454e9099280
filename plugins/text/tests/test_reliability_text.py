"""Text inputs and options that used to abort or allocate without bound (reliability audit rows A7, H1)."""

from __future__ import annotations

import time

import pytest

import polygraft
from polygraft.errors import ConfigError


def test_h1_a_huge_text_is_cut_before_tokenizing_and_flagged(catalog, tiny) -> None:
    backbone = polygraft.create_backbone("bert", catalog=catalog, **tiny)
    pre = backbone.preprocessor
    started = time.perf_counter()
    item = pre({"text": "the film " * 1_200_000})  # about 10 MB
    assert time.perf_counter() - started < 30  # tokenizing 10 MB whole took minutes and aborted the process
    assert item["truncated"] and len(item["input_ids"]) <= pre.max_length


def test_a7_a_position_table_that_cannot_fit_is_refused_up_front(catalog, tiny) -> None:
    with pytest.raises(ConfigError, match=r"max_length=10,000,000 needs a 10,000,000-position embedding table"):
        polygraft.create_backbone("bert", catalog=catalog, **{**tiny, "max_length": 10_000_000})

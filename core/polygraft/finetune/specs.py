"""Specs of the fine-tuning strategies (import-free; the builtin plugin registers them)."""

from __future__ import annotations

from polygraft.specs import StrategySpec

STRATEGY_SPECS: list[StrategySpec] = []

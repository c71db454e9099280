"""Moved: core's callbacks live in :mod:`polygraft.builtin.callbacks` (this path keeps working)."""

from polygraft.builtin.callbacks import BestCheckpoint, EarlyStopping, Monitor, TruncationCounter, infer_mode

__all__ = ["BestCheckpoint", "EarlyStopping", "Monitor", "TruncationCounter", "infer_mode"]

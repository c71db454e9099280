"""Moved: trainer callbacks are part of the plugin contract, :mod:`polygraft.interfaces.callback`.

This path keeps working for plugins written against polygraft 0.1 (``from polygraft.training.callbacks import
Callback``); import ``from polygraft.interfaces import Callback`` instead.
"""

from polygraft.interfaces.callback import Callback, TrainerView

__all__ = ["Callback", "TrainerView"]

"""Moved: the fine-tuning strategy contract is part of the plugin contract, :mod:`polygraft.interfaces.strategy`.

This path keeps working for plugins written against polygraft 0.1; import ``from polygraft.interfaces import
FinetuneStrategy`` instead.
"""

from polygraft.interfaces.strategy import FinetuneStrategy

__all__ = ["FinetuneStrategy"]

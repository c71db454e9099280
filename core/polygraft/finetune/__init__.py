"""Fine-tuning strategies: full, linear-probe, gradual-unfreeze, layer-wise LR decay, LoRA, EMA.

This package imports no torch by itself (the builtin plugin, :mod:`polygraft.builtin.plugin`, registers the
strategies by factory path); each strategy's module is imported when the strategy is created.

Example:
    >>> from polygraft.finetune import build_strategies
    >>> from polygraft.plugins import build_catalog
    >>> [s.name for s in build_strategies(["full"], build_catalog(autoload=False))]
    ['full']
"""

from polygraft.finetune.build import build_strategies

__all__ = ["build_strategies"]

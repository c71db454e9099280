"""Turn a recipe's ``strategy:`` list into strategy objects (imports no torch until a strategy is created).

Example:
    >>> from polygraft.finetune import build_strategies
    >>> from polygraft.plugins import build_catalog
    >>> catalog = build_catalog(autoload=False)
    >>> [s.name for s in build_strategies(["layer-wise-lr-decay", {"name": "ema", "decay": 0.99}], catalog)]
    ['ema', 'layer-wise-lr-decay']
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from polygraft.components import build, parse_entries
from polygraft.errors import ConfigError

if TYPE_CHECKING:
    from polygraft.interfaces.strategy import FinetuneStrategy
    from polygraft.plugins import Catalog


def build_strategies(items: Sequence[str | Mapping[str, Any]] | str | Mapping[str, Any] | None,
                     catalog: Catalog | None = None) -> list[FinetuneStrategy]:
    """Create the strategies a recipe names, in application order, rejecting combinations that make no sense.

    ``items`` entries are names (``"ema"``, or an alias such as ``"llrd"``) or mappings with ``name`` plus
    options (``{"name": "full", "trainable_layers": 2}``). Unknown names raise the registry's
    :class:`~polygraft.errors.UnknownComponentError`; bad options, duplicates and conflicting pairs (``full`` +
    ``linear-probe``...) raise :class:`~polygraft.errors.ConfigError`. The result is sorted by each strategy's
    ``order`` (ties keep the recipe's order): EMA first (it must finalize before LoRA merges), then full /
    linear-probe / LoRA (freeze before injecting adapters), gradual-unfreeze, and LLRD last.
    """
    if catalog is None:
        from polygraft.plugins import build_catalog

        catalog = build_catalog()
    strategies: list[FinetuneStrategy] = []
    for index, (name, options) in enumerate(parse_entries(items, where="strategy")):
        strategy = build(catalog, "strategy", name, options, where=f"strategy[{index}]")
        strategy.name = catalog.get("strategy", name).name
        strategies.append(strategy)
    _check_combination(strategies)
    return sorted(strategies, key=lambda s: getattr(s, "order", 50))


def _check_combination(strategies: Sequence[FinetuneStrategy]) -> None:
    names = [s.name for s in strategies]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigError(f"strategy {duplicates[0]!r} is listed twice; list each strategy once")
    for strategy in strategies:
        for other in getattr(strategy, "conflicts_with", ()):
            if other in names:
                raise ConfigError(
                    f"strategies {strategy.name!r} and {other!r} cannot be combined: {_why(strategy.name, other)}"
                )


_REASONS = {
    frozenset({"full", "linear-probe"}): "full trains every weight, linear-probe freezes the backbone; pick one",
    frozenset({"full", "gradual-unfreeze"}): "gradual-unfreeze starts from a frozen backbone; drop full",
    frozenset({"full", "lora"}): "LoRA freezes the base weights and trains adapters; drop full",
    frozenset({"linear-probe", "gradual-unfreeze"}): "linear-probe keeps the backbone frozen for the whole run; "
    "use gradual-unfreeze alone to start from a probe",
    frozenset({"linear-probe", "layer-wise-lr-decay"}): "the backbone is frozen, so per-layer rates do nothing",
    frozenset({"lora", "gradual-unfreeze"}): "unfreezing would train the base weights under the adapters; "
    "use lora alone or gradual-unfreeze alone",
}


def _why(a: str, b: str) -> str:
    return _REASONS.get(frozenset({a, b}), "they contradict each other; remove one")

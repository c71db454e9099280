"""Turn a recipe's ``strategy:`` list into strategy objects (imports no torch until a strategy is created).

Example:
    >>> from polygraft.finetune import build_strategies
    >>> from polygraft.plugins import build_catalog
    >>> catalog = build_catalog(autoload=False)
    >>> [s.name for s in build_strategies(["layer-wise-lr-decay", {"name": "ema", "decay": 0.99}], catalog)]
    ['ema', 'layer-wise-lr-decay']
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from polygraft.errors import ConfigError

if TYPE_CHECKING:
    from polygraft.finetune.base import FinetuneStrategy
    from polygraft.plugins import Catalog


def _parse(item: str | Mapping[str, Any], index: int) -> tuple[str, dict[str, Any]]:
    if isinstance(item, str):
        return item, {}
    if isinstance(item, Mapping):
        options = dict(item)
        name = options.pop("name", None)
        if not isinstance(name, str) or not name:
            raise ConfigError(
                f"strategy[{index}] = {dict(item)!r} has no 'name'; write e.g. {{name: ema, decay: 0.999}}"
            )
        return name, options
    raise ConfigError(
        f"strategy[{index}] must be a name or a mapping with a 'name' key, got {type(item).__name__}: {item!r}"
    )


def _accepted_options(spec: Any, factory: Any) -> str:
    documented = spec.metadata.get("options")
    if isinstance(documented, Mapping) and documented:
        return ", ".join(documented)
    try:
        params = [p.name for p in inspect.signature(factory).parameters.values() if p.kind == p.KEYWORD_ONLY]
    except (TypeError, ValueError):
        params = []
    return ", ".join(params) or "see the strategy's documentation"


def build_strategies(items: Sequence[str | Mapping[str, Any]] | str | None,
                     catalog: Catalog | None = None) -> list[FinetuneStrategy]:
    """Create the strategies a recipe names, in application order, rejecting combinations that make no sense.

    ``items`` entries are names (``"ema"``) or mappings with ``name`` plus options (``{"name": "ema",
    "decay": 0.999}``). Unknown names raise the registry's :class:`~polygraft.errors.UnknownComponentError`;
    bad options, duplicates and conflicting pairs (``full`` + ``linear-probe``...) raise
    :class:`~polygraft.errors.ConfigError`. The result is sorted by each strategy's ``order`` (ties keep the
    recipe's order): EMA first (it must finalize before LoRA merges), then full / linear-probe / LoRA (freeze
    before injecting adapters), gradual-unfreeze, and LLRD last.
    """
    if items is None:
        return []
    if isinstance(items, str | Mapping):
        items = [items]
    if catalog is None:
        from polygraft.plugins import build_catalog

        catalog = build_catalog()
    registry = catalog.registry("strategy")
    strategies: list[FinetuneStrategy] = []
    for index, item in enumerate(items):
        name, options = _parse(item, index)
        spec = registry.get(name)  # UnknownComponentError with suggestions
        factory = spec.load_factory()
        try:
            strategy = factory(**options)
        except TypeError as exc:
            raise ConfigError(
                f"strategy {name!r}: invalid options {sorted(options)} ({exc}). "
                f"Accepted options: {_accepted_options(spec, factory)}."
            ) from exc
        if not getattr(strategy, "name", ""):
            strategy.name = name
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

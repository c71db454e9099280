"""The ``per-branch`` strategy: fine-tuning strategies and a learning-rate multiplier for single branches.

Every strategy addresses ``module.backbone``. Listed at the top of a recipe (``strategy: [full]``) it sees the
whole fused backbone (its layer groups are the branches' groups aligned from the top, then the fusion layers).
Inside ``per-branch`` it sees one branch as if that branch were the whole backbone: each branch's strategies get a
view of the module whose ``backbone`` is the branch (their callbacks, too, through a scoped trainer view), so
``linear-probe`` freezes that branch only, ``lora`` wraps that branch's transformer, ``layer-wise-lr-decay``
decays across that branch's layer groups, ``gradual-unfreeze`` and ``ema`` follow that branch::

    strategy:
      - name: per-branch
        branches:
          image: {strategy: linear-probe}                          # probe the image encoder
          text: {strategy: [{name: lora, r: 8}], lr_multiplier: 2}  # LoRA on the text encoder, at 2 x lr
          audio: {strategy: {name: layer-wise-lr-decay, decay: 0.8}, lr_multiplier: 0.5}

Branches not named train as the rest of the model does; the fusion layers and the head train at ``trainer.lr``.
When a branch has a learning-rate multiplier or a strategy that sets parameter groups (LLRD), this strategy sets
the optimizer's groups: each branch's own (named ``<branch>/...``), then the rest with the trainer's defaults.

Example:
    >>> from polygraft.fusion.strategy import PerBranchStrategy
    >>> strategy = PerBranchStrategy(branches={"image": {"strategy": "linear-probe", "lr_multiplier": 0.1}})
    >>> [(b.name, [s.name for s in b.strategies], b.lr_multiplier) for b in strategy.plans]
    [('image', ['linear-probe'], 0.1)]
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from torch import nn

from polygraft.errors import ConfigError, IncompatibleComponentsError
from polygraft.finetune import build_strategies
from polygraft.finetune.groups import default_param_groups, is_no_decay
from polygraft.fusion.scoped import BranchCallback
from polygraft.interfaces import FinetuneStrategy
from polygraft.options import closest

if TYPE_CHECKING:
    from polygraft.interfaces import Backbone, Callback, TrainingModule
    from polygraft.plugins import Catalog

PLAN_KEYS = ("strategy", "lr_multiplier")


class BranchView(nn.Module):
    """A training module's stand-in for one branch: ``backbone`` is the branch (shared, not copied)."""

    def __init__(self, branch: Backbone, name: str) -> None:
        super().__init__()
        self.backbone = branch
        self.branch_name = name


@dataclass
class BranchPlan:
    """What one branch gets: its strategies and its learning-rate multiplier."""

    name: str
    strategies: list[FinetuneStrategy] = field(default_factory=list)
    lr_multiplier: float = 1.0
    view: BranchView | None = None


class PerBranchStrategy(FinetuneStrategy):
    """Strategies per branch of a fusion backbone (see the module docstring).

    Options:
        branches: ``{NAME: {strategy: <a strategy list, as the recipe's>, lr_multiplier: x}}``.
    """

    name = "per-branch"
    order = 35  # after full / linear-probe / lora on the whole model, before gradual-unfreeze and LLRD
    conflicts_with = ("layer-wise-lr-decay", "gradual-unfreeze", "lora")

    def __init__(self, *, branches: dict[str, Any], catalog: Catalog | None = None) -> None:
        if not isinstance(branches, Mapping) or not branches:
            raise ConfigError("per-branch: branches maps branch names to {strategy: ..., lr_multiplier: ...}, e.g. "
                              "branches: {image: {strategy: linear-probe}}")
        self.plans = [self._plan(str(name), body, catalog) for name, body in branches.items()]

    @staticmethod
    def _plan(name: str, body: Any, catalog: Catalog | None) -> BranchPlan:
        where = f"per-branch: branches.{name}"
        if isinstance(body, str | list):
            body = {"strategy": body}
        if not isinstance(body, Mapping):
            raise ConfigError(f"{where} must be {{strategy: ..., lr_multiplier: ...}}, got {body!r}")
        for key in body:
            if key not in PLAN_KEYS:
                near = closest(str(key), PLAN_KEYS, n=1)
                hint = f"; did you mean {near[0]!r}?" if near else ""
                raise ConfigError(f"{where}: unknown key {key!r}{hint} A branch takes {', '.join(PLAN_KEYS)}")
        multiplier = body.get("lr_multiplier", 1.0)
        if isinstance(multiplier, bool) or not isinstance(multiplier, int | float) or not multiplier >= 0:
            raise ConfigError(f"{where}.lr_multiplier must be a number ≥ 0, got {multiplier!r}")
        strategies = build_strategies(body.get("strategy") or [], catalog)
        for strategy in strategies:
            if strategy.name == "per-branch":
                raise ConfigError(f"{where}: per-branch cannot be nested")
        return BranchPlan(name, strategies, float(multiplier))

    def _views(self, module: TrainingModule) -> None:
        branches = getattr(module.backbone, "branches", None)
        if not isinstance(branches, nn.ModuleDict):
            raise IncompatibleComponentsError(
                f"per-branch addresses branches of a fusion backbone, but the backbone is "
                f"{module.backbone.spec_name or type(module.backbone).__name__!r}; use backbone: fusion, or list the "
                "strategies at the top of the recipe")
        for plan in self.plans:
            if plan.name not in branches:
                near = closest(plan.name, list(branches), n=1)
                hint = f"; did you mean {near[0]!r}?" if near else ""
                raise ConfigError(f"per-branch: {plan.name!r} is not a branch{hint} Branches: {list(branches)}")
            plan.view = BranchView(branches[plan.name], plan.name)  # type: ignore[arg-type]

    def setup(self, module: TrainingModule) -> None:
        self._views(module)
        for plan in self.plans:
            for strategy in plan.strategies:
                strategy.setup(plan.view)  # type: ignore[arg-type]  # a view is a module whose backbone is the branch

    def param_groups(self, module: TrainingModule, *, lr: float, weight_decay: float) -> list[dict[str, Any]] | None:
        if not any(plan.lr_multiplier != 1.0 or _sets_groups(plan) for plan in self.plans):
            return None
        if any(plan.view is None for plan in self.plans):
            self._views(module)
        groups: list[dict[str, Any]] = []
        seen: set[int] = set()
        for plan in self.plans:
            rate = lr * plan.lr_multiplier
            own = next((g for s in plan.strategies
                        if (g := s.param_groups(plan.view, lr=rate, weight_decay=weight_decay)) is not None), None)  # type: ignore[arg-type]
            if own is None:
                own = [{**group, "lr": rate} for group in default_param_groups(plan.view, weight_decay=weight_decay)]
            for group in own:
                params = [p for p in group["params"] if id(p) not in seen]
                seen.update(id(p) for p in params)
                if params:
                    groups.append({**group, "params": params,
                                   "name": f"{plan.name}/{group.get('name', 'decay' if group['weight_decay'] else 'no_decay')}"})
        rest = [(n, p) for n, p in module.named_parameters() if id(p) not in seen]
        for decays in (True, False):
            params = [p for n, p in rest if is_no_decay(n, p) != decays]
            if params:
                groups.append({"params": params, "lr": lr, "weight_decay": weight_decay if decays else 0.0,
                               "name": "rest/decay" if decays else "rest/no_decay"})
        return groups

    def callbacks(self) -> list[Callback]:
        return [BranchCallback(plan.name, callback, module=plan.view)
                for plan in self.plans for strategy in plan.strategies for callback in strategy.callbacks()]

    def finalize(self, module: TrainingModule) -> None:
        for plan in self.plans:
            for strategy in plan.strategies:
                strategy.finalize(plan.view)  # type: ignore[arg-type]


def _sets_groups(plan: BranchPlan) -> bool:
    return any(type(s).param_groups is not FinetuneStrategy.param_groups for s in plan.strategies)


__all__ = ["BranchPlan", "BranchView", "PerBranchStrategy"]

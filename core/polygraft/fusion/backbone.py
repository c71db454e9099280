"""The ``fusion`` backbone: branches of any registered backbones, fused into modality-free features.

Each branch is built by name through the caller's catalog (:func:`polygraft.components.build_backbone`: weights
aliases, local paths and polygraft runs work as for any backbone), reads its fields with its own preprocessor
(:class:`~polygraft.fusion.preprocess.FusionPreprocessor`) and yields its own features; the
:class:`~polygraft.fusion.layers.FusionLayers` fuse them. Where a branch is missing, its learned "missing"
embedding stands in; ``modality_dropout`` drops whole branches of training examples (never all of an example's) so
the model learns to do without them.

**Every encoder takes part in every training step**, so DDP (which expects a gradient for every trainable
parameter) never meets an unused one: a branch runs on the examples that have it, its output reaches the loss
through ``torch.where`` even where it is replaced, and a branch that no example of a micro-batch has adds
``0 × (sum of its trainable parameters)`` to the output (zero gradients, same graph).

Layer groups (for freezing, gradual unfreezing and LLRD over the whole model) are the branches' own groups aligned
from the top (group -2 holds every branch's top group, -3 the next ones down...), then the fusion layers on top.
``per-branch`` strategies address one branch instead (:mod:`polygraft.fusion.strategy`).

Example:
    >>> import polygraft
    >>> backbone = polygraft.create_backbone("fusion", fusion="mlp", hidden=16, branches={
    ...     "a": {"backbone": "toy", "backbone_options": {"in_features": 2}},
    ...     "b": {"backbone": "toy", "backbone_options": {"in_features": 3}}})
    >>> pre = backbone.preprocessor
    >>> batch = pre.collate([pre({"a": [1.0, 2.0], "b": [0.0, 1.0, 2.0]}), pre({"b": [1.0, 1.0, 1.0]})])
    >>> backbone(batch).pooled.shape
    torch.Size([2, 16])
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from polygraft.errors import ConfigError, UnknownComponentError
from polygraft.features import Features
from polygraft.fusion.branches import BranchConfig, FieldMap, parse_branches
from polygraft.fusion.layers import KINDS, TOKENS, FusionFeatures, FusionLayers
from polygraft.fusion.preprocess import BranchInput, FusionPreprocessor
from polygraft.interfaces import Backbone
from polygraft.options import closest


class FusionBackbone(Backbone):
    """Branches (``self.branches``, an ``nn.ModuleDict`` of backbones) and their fusion (``self.fusion``)."""

    modality = "multimodal"

    def __init__(self, branches: Mapping[str, Backbone], configs: list[BranchConfig], layers: FusionLayers, *,
                 modality_dropout: Mapping[str, float], tokens: str, auxiliary_loss_weight: float) -> None:
        super().__init__()
        self.branches = nn.ModuleDict(dict(branches))
        self.fusion = layers
        self.configs = list(configs)
        self.modality_dropout = {name: float(modality_dropout.get(name, 0.0)) for name in self.branches}
        self.tokens = tokens
        self.feature_dim = layers.out_dim
        # channels-last (trainer.channels_last: auto) where a branch is a CNN; it leaves the other branches' 2-D
        # and 1-D weights as they are
        self.convolutional = any(branch.convolutional for branch in branches.values())
        #: per-branch auxiliary heads: tasks that support them (classification, regression, multilabel) add
        #: ``auxiliary_loss_weight`` × each branch head's loss (AutoGluon MultiModal's ``loss_weight``)
        self.auxiliary_loss_weight = float(auxiliary_loss_weight)
        self.auxiliary_dims = ({name: branch.feature_dim for name, branch in self.branches.items()}
                               if auxiliary_loss_weight > 0 else {})
        self._preprocessor = FusionPreprocessor([
            BranchInput(config.name, FieldMap(config.fields, config.keys, branch.preprocessor.input_key),
                        branch.preprocessor)
            for config, branch in zip(configs, branches.values())])

    @property
    def preprocessor(self) -> FusionPreprocessor:
        return self._preprocessor

    # ------------------------------------------------------------------------------------------ forward
    def forward(self, inputs: Mapping[str, Any]) -> Features:
        present: Mapping[str, torch.Tensor] = inputs["present"]
        given: Mapping[str, Any] = inputs.get("branches", {})
        size = int(next(iter(present.values())).shape[0])
        pooled: dict[str, torch.Tensor] = {}
        sequences: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        idle: list[torch.Tensor] = []
        for name, branch in self.branches.items():
            mask = present[name]
            if name not in given:
                pooled[name] = self._absent(branch, size, mask.device)  # type: ignore[arg-type]
                if self.training:
                    idle.append(_participation(branch, mask.device))
                continue
            features = branch(given[name])
            pooled[name] = _scatter(features.pool(), mask)
            if self.tokens == "sequence" and features.sequence is not None:
                sequence = features.sequence
                seq_mask = features.mask if features.mask is not None else \
                    torch.ones(sequence.shape[:2], dtype=torch.bool, device=sequence.device)
                sequences[name] = (_scatter(sequence, mask), _scatter(seq_mask, mask))
        use = self._drop(dict(present)) if self.training else dict(present)
        fused = self.fusion(pooled, use, sequences)
        for extra in idle:
            fused = fused + extra.to(fused.dtype)
        return FusionFeatures(pooled=fused, branch_pooled=pooled, branch_present=dict(present))

    def _absent(self, branch: Backbone, size: int, device: torch.device) -> torch.Tensor:
        dtype = next((p.dtype for p in self.fusion.parameters()), torch.float32)
        return torch.zeros(size, branch.feature_dim, dtype=dtype, device=device)

    def _drop(self, use: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Modality dropout: each branch of each example is dropped with its probability, never every branch an
        example has (one of them, at random, is kept)."""
        names = list(self.branches)
        if not any(self.modality_dropout[name] > 0 for name in names):
            return use
        available = torch.stack([use[name] for name in names], dim=1)
        chances = torch.tensor([self.modality_dropout[name] for name in names], device=available.device)
        kept = available & ~(torch.rand(available.shape, device=available.device) < chances)
        lost = available.any(dim=1) & ~kept.any(dim=1)
        if bool(lost.any()):
            scores = torch.rand(available.shape, device=available.device).masked_fill(~available, -1.0)
            rescue = nn.functional.one_hot(scores.argmax(dim=1), len(names)).bool() & lost.unsqueeze(1)
            kept = kept | rescue
        return {name: kept[:, index] for index, name in enumerate(names)}

    # ------------------------------------------------------------------------------------------ structure
    def layer_groups(self) -> list[nn.Module]:
        """The branches' groups aligned from the top, input → output, then the fusion layers."""
        per_branch = [branch.layer_groups() for branch in self.branches.values()]
        depth = max(len(groups) for groups in per_branch)
        aligned: list[nn.Module] = []
        for from_top in range(depth, 0, -1):
            members = [groups[len(groups) - from_top] for groups in per_branch if len(groups) >= from_top]
            aligned.append(nn.ModuleList(members))
        return [*aligned, self.fusion]

    def export(self, directory: Path) -> dict[str, Any]:
        """The fusion options plus, per branch, its backbone's own export (its assets under ``branches/NAME``)."""
        root = Path(directory) / "branches"
        branches: dict[str, Any] = {}
        for config in self.configs:
            branch = self.branches[config.name]
            folder = root / config.name
            folder.mkdir(parents=True, exist_ok=True)
            options = branch.export(folder)
            if not any(folder.iterdir()):
                folder.rmdir()
            branches[config.name] = {"backbone": branch.spec_name or config.backbone, "backbone_options": options,
                                     "fields": config.fields_option()}
        if root.is_dir() and not any(root.iterdir()):
            root.rmdir()
        return {**self.build_options, "branches": branches}

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "fusion": self.fusion.kind,
                "branches": {name: branch.spec_name for name, branch in self.branches.items()}}


def _scatter(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Rows of the examples that have a branch, placed at their batch positions (zeros elsewhere)."""
    full = values.new_zeros((mask.shape[0], *values.shape[1:]))
    full[mask] = values
    return full


def _participation(branch: nn.Module, device: torch.device) -> torch.Tensor:
    """0 × the sum of a branch's trainable parameters: zero gradients, so DDP sees every parameter used."""
    total = torch.zeros((), device=device)
    for param in branch.parameters():
        if param.requires_grad:
            total = total + param.sum() * 0.0
    return total


def create_fusion_backbone(*, weights: str | None = None, branches: dict[str, Any], fusion: str = "mlp",
                           hidden: int = 256, depth: int = 2, heads: int = 4, dropout: float = 0.1,
                           tokens: str = "pooled", modality_dropout: float | dict[str, float] = 0.0,
                           auxiliary_loss_weight: float = 0.0, catalog: Any = None) -> FusionBackbone:
    """Factory registered as backbone ``fusion``.

    Args:
        weights: only a polygraft run of a fusion model (core loads it); each branch names its own weights.
        branches: ``{NAME: {backbone, weights, backbone_options, fields}}`` (:mod:`polygraft.fusion.branches`).
        fusion: ``mlp`` (default), ``transformer`` or ``concat``.
        hidden: width of the projections and of the fused features (``mlp``, ``transformer``).
        depth: MLP layers (``mlp``) or Transformer layers (``transformer``). heads: attention heads.
        dropout: inside the fusion layers.
        tokens: ``pooled`` (one token per branch) or ``sequence`` (also each branch's sequence features;
            ``transformer`` only).
        modality_dropout: probability of dropping a branch of a training example (one number, or one per branch).
        auxiliary_loss_weight: > 0 adds a head per branch whose loss, times this weight, joins the task's loss.
        catalog: supplied by core: the catalog the branches are built from.
    """
    from polygraft.components import build_backbone

    if weights is not None:
        raise ConfigError(f"fusion: weights={weights!r}; a fused model takes weights per branch "
                          "(backbone_options.branches.NAME.weights), or a polygraft run of a fusion model")
    configs = parse_branches(branches)
    names = [config.name for config in configs]
    _check_choice("fusion", fusion, KINDS)
    _check_choice("tokens", tokens, TOKENS)
    if tokens == "sequence" and fusion != "transformer":
        raise ConfigError("fusion: tokens: sequence feeds branch sequences to the transformer; use fusion: transformer")
    if hidden < 1 or depth < 1 or heads < 1:
        raise ConfigError(f"fusion: hidden, depth and heads must be ≥ 1, got {hidden}, {depth}, {heads}")
    if fusion == "transformer" and hidden % heads:
        raise ConfigError(f"fusion: hidden={hidden} must be a multiple of heads={heads}")
    if not 0 <= dropout < 1 or auxiliary_loss_weight < 0:
        raise ConfigError(f"fusion: dropout must be in [0, 1) and auxiliary_loss_weight ≥ 0, got {dropout}, "
                          f"{auxiliary_loss_weight}")
    chances = _dropout_chances(modality_dropout, names)
    if catalog is None:
        from polygraft.plugins import build_catalog

        catalog = build_catalog()
    built: dict[str, Backbone] = {}
    for config in configs:
        where = f"backbone_options.branches.{config.name}"
        try:
            built[config.name] = build_backbone(catalog, config.backbone, weights=config.weights,
                                                options=config.backbone_options, where=f"{where}.backbone_options")
        except UnknownComponentError as exc:
            raise UnknownComponentError(f"{where}.backbone: {exc}") from None
        if built[config.name].feature_dim < 1:
            raise ConfigError(f"{where}: backbone {config.backbone!r} declares no feature_dim")
    layers = FusionLayers({name: branch.feature_dim for name, branch in built.items()}, kind=fusion, hidden=hidden,
                          depth=depth, heads=heads, dropout=dropout, tokens=tokens)
    backbone = FusionBackbone(built, configs, layers, modality_dropout=chances, tokens=tokens,
                              auxiliary_loss_weight=auxiliary_loss_weight)
    backbone.build_options = {"fusion": fusion, "hidden": hidden, "depth": depth, "heads": heads, "dropout": dropout,
                              "tokens": tokens, "modality_dropout": modality_dropout,
                              "auxiliary_loss_weight": auxiliary_loss_weight}
    return backbone


def _check_choice(option: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        near = closest(str(value), allowed, n=1)
        hint = f"; did you mean {near[0]!r}?" if near else ""
        raise ConfigError(f"fusion: {option} must be one of {', '.join(allowed)}, got {value!r}{hint}")


def _dropout_chances(value: float | Mapping[str, float], names: list[str]) -> dict[str, float]:
    chances = dict(value) if isinstance(value, Mapping) else dict.fromkeys(names, value)
    for name, chance in chances.items():
        if name not in names:
            near = closest(name, names, n=1)
            hint = f"; did you mean {near[0]!r}?" if near else ""
            raise ConfigError(f"fusion: modality_dropout names {name!r}, which is not a branch{hint} Branches: {names}")
        if not isinstance(chance, int | float) or not 0 <= float(chance) < 1:
            raise ConfigError(f"fusion: modality_dropout must be in [0, 1), got {chance!r} for {name!r}")
    return {name: float(chance) for name, chance in chances.items()}


__all__ = ["FusionBackbone", "create_fusion_backbone"]

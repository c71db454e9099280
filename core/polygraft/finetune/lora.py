"""LoRA through peft: low-rank adapters on the backbone's attention projections; only adapters (and the head) train.

The backbone must keep its wrapped model (a Hugging Face ``PreTrainedModel`` or any ``nn.Module`` with linear
projections) in an attribute, ``model`` by default. Adapters are injected in place with peft's ``LoraModel``, so
the backbone's ``forward`` and ``layer_groups`` keep working; ``finalize`` merges them into the base weights and
removes them (``merge_and_unload``), so the saved model is a plain backbone that reloads without peft.

Example:
    >>> from polygraft.finetune.lora import LoraStrategy
    >>> strategy = LoraStrategy(r=4, alpha=8)
    >>> strategy.target_modules is None  # picked from the model type (query/value for BERT-family models)
    True
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from torch import nn

from polygraft.errors import ConfigError, IncompatibleComponentsError
from polygraft.finetune.freezing import ADAPTER_MARKER
from polygraft.interfaces.strategy import FinetuneStrategy

if TYPE_CHECKING:
    from polygraft.interfaces import Backbone, TrainingModule

#: leaf-module name pairs tried in order when neither ``target_modules`` nor peft's per-model-type table applies
CANDIDATE_TARGETS: tuple[tuple[str, ...], ...] = (
    ("query", "value"),  # BERT, RoBERTa, ELECTRA, ViT, ALBERT
    ("q_proj", "v_proj"),  # wav2vec2, HuBERT, BART, CLIP, OPT, LLaMA
    ("q_lin", "v_lin"),  # DistilBERT
    ("query_proj", "value_proj"),  # DeBERTa-v2
    ("qkv",),  # timm ViTs
)


def _backbone_name(backbone: nn.Module) -> str:
    return getattr(backbone, "spec_name", "") or type(backbone).__name__


def _linear_leaf_names(model: nn.Module) -> set[str]:
    return {name.rsplit(".", 1)[-1] for name, m in model.named_modules() if isinstance(m, nn.Linear | nn.Conv1d)}


def default_target_modules(model: nn.Module) -> list[str] | None:
    """peft's default for the model's ``config.model_type``, else the first name pair present in the model."""
    from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING

    model_type = getattr(getattr(model, "config", None), "model_type", None)
    leaves = _linear_leaf_names(model)
    known = TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING.get(model_type or "")
    if known and any(name in leaves for name in known):
        return list(known)
    for candidate in CANDIDATE_TARGETS:
        if all(name in leaves for name in candidate):
            return list(candidate)
    return None


class LoraStrategy(FinetuneStrategy):
    """Inject LoRA adapters into ``module.backbone.<model_attribute>``; freeze every other backbone weight.

    Options:
        r: adapter rank (default 8). alpha: scaling numerator (default 16, scale = alpha / r).
        dropout: dropout on the adapter input (default 0.05).
        target_modules: module names to adapt; default query/value for BERT-family models, peft's table for
            other Hugging Face model types, else q_proj/v_proj, q_lin/v_lin or qkv when present.
        model_attribute: the backbone attribute holding the wrapped model (default ``model``).
        merge: merge adapters into the base weights in ``finalize`` (default true; false keeps them, and the
            saved model then needs the same adapters injected before loading).

    Combines with ``linear-probe`` (adapters + head train, every other backbone parameter is frozen, batch
    norms kept in eval) and ``layer-wise-lr-decay`` (adapters get their layer's rate).
    """

    name = "lora"
    order = 30
    conflicts_with = ("full", "gradual-unfreeze")

    def __init__(self, *, r: int = 8, alpha: float = 16, dropout: float = 0.05,
                 target_modules: Sequence[str] | str | None = None, model_attribute: str = "model",
                 merge: bool = True) -> None:
        if int(r) < 1:
            raise ConfigError(f"lora: r must be a positive integer, got {r}")
        if not 0 <= dropout < 1:
            raise ConfigError(f"lora: dropout must be in [0, 1), got {dropout}")
        self.r = int(r)
        self.alpha = alpha
        self.dropout = dropout
        self.target_modules = [target_modules] if isinstance(target_modules, str) else target_modules
        self.model_attribute = model_attribute
        self.merge = merge
        self._tuner: Any = None

    def _wrapped_model(self, backbone: Backbone) -> nn.Module:
        model = getattr(backbone, self.model_attribute, None)
        if not isinstance(model, nn.Module):
            raise IncompatibleComponentsError(
                f"lora cannot wrap backbone {_backbone_name(backbone)!r}: LoRA needs the backbone to keep its "
                f"transformer model (e.g. a Hugging Face PreTrainedModel) in the attribute "
                f"{self.model_attribute!r}, which it does not have. Use a transformer backbone (bert, wav2vec2, a "
                "timm ViT), pass model_attribute=<its attribute>, or choose another strategy (full, linear-probe)."
            )
        return model

    def setup(self, module: TrainingModule) -> None:
        from peft import LoraConfig, LoraModel

        backbone = module.backbone
        model = self._wrapped_model(backbone)
        targets = list(self.target_modules) if self.target_modules else default_target_modules(model)
        if not targets:
            raise IncompatibleComponentsError(
                f"lora cannot wrap backbone {_backbone_name(backbone)!r}: found no attention projections to adapt "
                f"(looked for {[list(c) for c in CANDIDATE_TARGETS]}). Pass target_modules=[...] naming its "
                "linear layers, or choose another strategy (full, linear-probe)."
            )
        config = LoraConfig(r=self.r, lora_alpha=self.alpha,  # type: ignore[arg-type]  # peft takes a float too
                            lora_dropout=self.dropout, target_modules=targets, bias="none")
        try:
            self._tuner = LoraModel(model, config, "default")
        except ValueError as exc:
            raise IncompatibleComponentsError(
                f"lora cannot wrap backbone {_backbone_name(backbone)!r} with target_modules={targets}: {exc}. "
                "LoRA needs linear, conv or embedding layers with those names; pass target_modules=[...] naming "
                "existing layers."
            ) from exc
        backbone.requires_grad_(False)
        for name, param in backbone.named_parameters():
            if ADAPTER_MARKER in name:
                param.requires_grad_(True)

    def adapter_parameters(self, module: TrainingModule) -> list[nn.Parameter]:
        """The LoRA adapter tensors (what trains inside the backbone)."""
        return [p for n, p in module.backbone.named_parameters() if ADAPTER_MARKER in n]

    def finalize(self, module: TrainingModule) -> None:
        if self._tuner is None or not self.merge:
            return
        model = self._tuner.merge_and_unload()
        if model is not getattr(module.backbone, self.model_attribute):
            setattr(module.backbone, self.model_attribute, model)
        self._tuner = None
        module.backbone.requires_grad_(True)

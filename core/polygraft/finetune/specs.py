"""Specs of the fine-tuning strategies (import-free; the builtin plugin registers them)."""

from __future__ import annotations

from polygraft.specs import StrategySpec

STRATEGY_SPECS: list[StrategySpec] = [
    StrategySpec(
        name="full", factory="polygraft.finetune.freezing:create_full",
        description="Train every weight of backbone and head (the default).",
    ),
    StrategySpec(
        name="linear-probe", factory="polygraft.finetune.freezing:create_linear_probe",
        description="Freeze the backbone (batch norms in eval), train the head; combines with lora.",
        metadata={"options": {"freeze_batchnorm": True}},
    ),
    StrategySpec(
        name="gradual-unfreeze", factory="polygraft.finetune.freezing:create_gradual_unfreeze",
        description="Start with the head only, unfreeze backbone layer groups top-down at milestones (ULMFiT).",
        metadata={"options": {"every_steps": None, "milestones": None, "until": 0.5}},
    ),
    StrategySpec(
        name="layer-wise-lr-decay", factory="polygraft.finetune.llrd:create_layer_wise_lr_decay",
        description="LLRD: layer group i of L gets lr * decay^(L-i), the head gets lr; no decay on norms/biases.",
        metadata={"options": {"decay": 0.8}, "aliases_in_docs": ["llrd"]},
    ),
    StrategySpec(
        name="lora", factory="polygraft.finetune.lora:create_lora",
        description="LoRA adapters (peft) on the backbone's attention projections, merged into the weights at the end.",
        metadata={"options": {"r": 8, "alpha": 16, "dropout": 0.05, "target_modules": None,
                              "model_attribute": "model", "merge": True}},
    ),
    StrategySpec(
        name="ema", factory="polygraft.finetune.ema:create_ema",
        description="Exponential moving average of the weights, used for validation and the saved model.",
        metadata={"options": {"decay": 0.999, "update_every": 1, "warmup": True}},
    ),
]

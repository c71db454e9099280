"""Fine-tuning strategies: full, linear-probe, gradual-unfreeze, layer-wise LR decay, LoRA, EMA."""

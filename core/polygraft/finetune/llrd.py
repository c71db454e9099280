"""Layer-wise learning-rate decay (LLRD, "discriminative fine-tuning"): lower layers learn more slowly.

With ``L`` backbone layer groups ordered input → output, group ``i`` (0-based) gets ``lr * decay ** (L - i)``:
the top group ``lr * decay``, the bottom one ``lr * decay ** L``; the head (everything outside the backbone) gets
``lr``. Backbone parameters that belong to no layer group get the bottom rate. Each rate is split into a
weight-decay group and a no-decay group (biases, norms and other 1-D parameters), like the trainer's defaults.
Frozen parameters are included too (they simply get no gradient), so LLRD combines with ``gradual-unfreeze``.

Example:
    >>> import polygraft
    >>> from polygraft.finetune.llrd import LayerWiseLRDecayStrategy
    >>> task = polygraft.create_task("classification", backbone="toy", label_names=["a", "b"])
    >>> groups = LayerWiseLRDecayStrategy(decay=0.5).param_groups(task, lr=1.0, weight_decay=0.01)
    >>> sorted({g["lr"] for g in groups})
    [0.125, 0.25, 0.5, 1.0]
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from torch import nn

from polygraft.errors import ConfigError, IncompatibleComponentsError
from polygraft.finetune.groups import is_no_decay
from polygraft.interfaces.strategy import FinetuneStrategy

if TYPE_CHECKING:
    from polygraft.interfaces import TrainingModule


def _split(label: str, named: list[tuple[str, nn.Parameter]], lr: float, weight_decay: float) -> list[dict[str, Any]]:
    decay = [p for n, p in named if not is_no_decay(n, p)]
    no_decay = [p for n, p in named if is_no_decay(n, p)]
    groups = []
    if decay:
        groups.append({"params": decay, "lr": lr, "weight_decay": weight_decay, "name": f"{label}/decay"})
    if no_decay:
        groups.append({"params": no_decay, "lr": lr, "weight_decay": 0.0, "name": f"{label}/no_decay"})
    return groups


class LayerWiseLRDecayStrategy(FinetuneStrategy):
    """Optimizer groups with geometrically decaying learning rates from the head down to the input layer.

    Options:
        decay: factor per layer group, in (0, 1]. Default 0.8 (0.65-0.95 is the usual range).
    """

    name = "layer-wise-lr-decay"
    order = 60
    conflicts_with = ("linear-probe",)

    def __init__(self, *, decay: float = 0.8) -> None:
        if not 0 < decay <= 1:
            raise ConfigError(f"layer-wise-lr-decay: decay must be in (0, 1], got {decay}")
        self.decay = decay

    def param_groups(self, module: TrainingModule, *, lr: float, weight_decay: float) -> list[dict[str, Any]]:
        backbone = module.backbone
        try:
            layer_groups = backbone.layer_groups()
        except NotImplementedError:
            layer_groups = []
        count = len(layer_groups)
        if count == 0:
            raise IncompatibleComponentsError(
                f"layer-wise-lr-decay needs a backbone with layer groups, but "
                f"{backbone.spec_name or type(backbone).__name__} has none: implement layer_groups() "
                "(input -> output) or drop layer-wise-lr-decay from the recipe"
            )
        seen: set[int] = set()
        buckets: list[list[tuple[str, nn.Parameter]]] = [[] for _ in range(count)]
        names = {id(p): n for n, p in module.named_parameters()}
        for index, group in enumerate(layer_groups):
            for param in group.parameters():
                if id(param) not in seen:
                    seen.add(id(param))
                    buckets[index].append((names.get(id(param), ""), param))
        leftover = [(n, p) for n, p in backbone.named_parameters(prefix="backbone") if id(p) not in seen]
        seen.update(id(p) for _, p in leftover)
        buckets[0] = leftover + buckets[0]
        head = [(n, p) for n, p in module.named_parameters() if id(p) not in seen]

        groups: list[dict[str, Any]] = []
        for index, bucket in enumerate(buckets):
            groups += _split(f"layer{index}", bucket, lr * self.decay ** (count - index), weight_decay)
        groups += _split("head", head, lr, weight_decay)
        return groups

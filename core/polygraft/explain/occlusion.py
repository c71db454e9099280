"""Occlusion: the model-agnostic explainer, with captum; every backbone gets it, declared or not.

A part of the input is replaced by the baseline and the drop of the target's score is its attribution:
words (all tokens of a word at once, captum ``FeatureAblation``) for text, single features for vectors, and
sliding windows (captum ``Occlusion``) for pixels, time-frequency cells and waveform frames. It needs no
gradients and no layer, so it also explains a backbone that declares no attribution hooks: its largest input
tensor is occluded with zeros.

Example:
    >>> from polygraft.explain.occlusion import windows
    >>> windows((3, 224, 224), "image")
    ((3, 32, 32), (3, 16, 16))
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from polygraft.explain.registry import Explainer, RawAttribution, Settings, register_explainer

if TYPE_CHECKING:
    from polygraft.explain.subject import Subject
    from polygraft.explain.tasks import Target

BATCH = 16  # occluded copies per forward pass


def windows(shape: tuple[int, ...], kind: str, frame_size: int | None = None) -> tuple[tuple[int, ...], ...]:
    """Sliding window and stride for one example's input shape: about 1/7 of an image side, 1/8 of the mel
    bins by 1/10 of the frames, 4 frames of a waveform; windows overlap by half, leading (channel) axes whole."""
    last: tuple[int, ...]
    if kind == "waveform":
        last = (min(shape[-1], 4 * int(frame_size or max(1, shape[-1] // 50))),)
    elif kind == "image" and len(shape) == 3:
        last = (max(1, shape[1] // 7), max(1, shape[2] // 7))
    elif len(shape) >= 2:
        last = (max(1, shape[-2] // 8), max(1, shape[-1] // (10 if kind == "spectrogram" else 8)))
    else:
        return (1,), (1,)
    lead = tuple(shape[: len(shape) - len(last)])
    return (*lead, *last), (*lead, *(max(1, w // 2) for w in last))


def group_mask(subject: Subject) -> torch.Tensor:
    """(1, ...) feature groups for ablation: one per word (special tokens and padding in one group), one per
    feature of a vector."""
    if subject.hooks.kind == "tokens":
        ids = torch.tensor(subject.word_ids(), device=subject.x.device)
        return torch.where(ids >= 0, ids, ids.max().clamp_min(0) + 1)[None]
    return torch.arange(subject.x[0].numel(), device=subject.x.device).reshape(subject.x.shape)


class Occlusion(Explainer):
    name = "occlusion"
    requires = (("captum", "captum==0.9.0"),)
    summary = "captum Occlusion / FeatureAblation: score drop when words, features or windows are removed"

    def attribute(self, subject: Subject, target: Target, settings: Settings) -> RawAttribution:
        from captum.attr import FeatureAblation
        from captum.attr import Occlusion as CaptumOcclusion

        forward = subject.forward_for(target.value)
        x, baseline, others = subject.x, subject.baseline(), subject.others
        kind = subject.hooks.kind
        per_eval = settings.batch_size or BATCH
        with torch.no_grad():
            if kind in ("tokens", "vector") or not x.is_floating_point():
                groups = group_mask(subject)
                values = FeatureAblation(forward).attribute(x, baselines=baseline, feature_mask=groups,
                                                            additional_forward_args=others or None,
                                                            perturbations_per_eval=per_eval)[0]
                sizes = torch.bincount(groups.reshape(-1)).to(values.dtype)
                values = values / sizes[groups[0]]  # each token carries its share, so words sum to the group's
            else:
                window, strides = windows(tuple(x.shape[1:]), kind, subject.hooks.frame_size)
                values = CaptumOcclusion(forward).attribute(x, sliding_window_shapes=window, strides=strides,
                                                            baselines=baseline,
                                                            additional_forward_args=others or None,
                                                            perturbations_per_eval=per_eval)[0]
        notes = [] if subject.declared else [
            "the backbone declares no attribution hooks: its largest input tensor was occluded with zeros "
            f"({subject.hooks.input!r}); see docs/hooks.md to declare better ones"]
        return RawAttribution(values=values.detach().float(), notes=notes)


register_explainer(Occlusion())

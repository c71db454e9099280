"""The ``wav2vec2`` pretraining objective: contrastive prediction of quantised masked frames (Baevski et al. 2020).

Built from the pieces of transformers' ``Wav2Vec2ForPreTraining`` around the polygraft ``wav2vec2`` backbone's
own Hugging Face model, so after pretraining the backbone *is* the pretrained encoder (``export`` is inherited:
the run's ``model/`` is a backbone checkpoint ``finetune`` accepts as ``weights:``). Per batch, spans of
``mask_time_length`` frames starting with probability ``mask_time_prob`` are drawn over each clip's real frames
only (``_compute_mask_indices`` with the frame mask; padding is never masked) and, for every masked frame,
``num_negatives`` distractors from the other masked frames of the same clip (``_sample_negative_indices``).
Masked frames get the backbone's mask embedding before the transformer; a ``Wav2Vec2GumbelVectorQuantizer``
turns the unmasked conv features into targets; ``project_hid`` / ``project_q`` map both to
``proj_codevector_dim``. The loss, in float32 also under bf16 autocast, is the contrastive cross-entropy averaged
over masked real frames plus ``diversity_loss_weight`` x the diversity loss ``(G*V - perplexity) / (G*V)``.

The Gumbel temperature is ``max(max_gumbel_temperature * gumbel_temperature_decay ** updates,
min_gumbel_temperature)``, ``updates`` counting optimizer steps (not micro-batches, so gradient accumulation does
not change the schedule; skipped steps do not count; saved in checkpoints), through a trainer callback the
objective brings along (``callbacks()``).

Training masks are drawn afresh (from torch's RNG, seeded by the trainer); validation masks and negatives are
seeded from the batch's samples, and the quantiser picks codes by argmax, so validation loss is comparable
between evaluations. Validation metrics: ``contrastive_loss``, ``diversity_loss``, ``codebook_perplexity``
(of the codes chosen on all masked frames of the split, summed over groups, at most G*V), ``accuracy`` (the
true target scores above every distractor), ``masked_fraction`` and ``gumbel_temperature``.

Example:
    >>> import numpy as np, polygraft
    >>> objective = polygraft.create_objective("wav2vec2", backbone="wav2vec2", backbone_options={"size": "tiny"},
    ...     mask_time_length=4, num_negatives=5, codevector_dim=16, proj_codevector_dim=16,
    ...     num_codevectors_per_group=8)
    >>> pipe = objective.data_pipeline(training=True)
    >>> clips = [{"audio": np.random.randn(n).astype("float32"), "sample_rate": 16000} for n in (16000, 8000)]
    >>> batch = pipe.collate([pipe.prepare(clip) for clip in clips])
    >>> bool(batch["mask_time_indices"][1, 24:].any())  # the second clip has 24 real frames
    False
    >>> float(objective(batch).loss) > 0
    True
"""

from __future__ import annotations

import contextlib
import copy
import zlib
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torchmetrics
from torch import nn
from torch.nn import functional as F

from polygraft.errors import ConfigError, IncompatibleComponentsError
from polygraft.features import Batch
from polygraft.interfaces import Callback, DataPipeline, StepOutput
from polygraft.interfaces.backbone import Backbone
from polygraft.interfaces.objective import PretrainingObjective
from polygraft.interfaces.preprocessor import Preprocessor


def conv_output_lengths(samples: torch.Tensor, kernels: Sequence[int], strides: Sequence[int]) -> torch.Tensor:
    """Frames a wav2vec2 conv stack yields for clips of ``samples`` samples (as the model's own formula)."""
    lengths = samples.to(torch.long)
    for kernel, stride in zip(kernels, strides, strict=True):
        lengths = torch.div(lengths - kernel, stride, rounding_mode="floor") + 1
    return lengths


@contextlib.contextmanager
def _numpy_seed(seed: int) -> Iterator[None]:
    """transformers' mask and negative samplers use numpy's global RNG: seed it here, restore it after."""
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


def sample_masks(frame_lengths: Sequence[int], frames: int, *, mask_prob: float, mask_length: int,
                 min_masks: int, num_negatives: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Masked spans over each clip's real frames and ``num_negatives`` distractors per masked frame.

    Returns ``mask`` (B, frames) bool and ``negatives`` (B, frames, num_negatives) long: indices into the
    flattened (B * frames) targets, drawn among the *other* masked frames of the same clip. A clip shorter than
    ``mask_length`` frames, or left with a single masked frame (which has no distractor), is not masked.
    """
    from transformers.models.wav2vec2.modeling_wav2vec2 import _compute_mask_indices, _sample_negative_indices

    lengths = torch.as_tensor(list(frame_lengths), dtype=torch.long)
    real = (torch.arange(frames)[None, :] < lengths[:, None]).numpy()
    mask = np.zeros((len(lengths), frames), dtype=bool)
    with _numpy_seed(seed):
        if frames >= mask_length:
            mask = _compute_mask_indices((len(lengths), frames), mask_prob=mask_prob, mask_length=mask_length,
                                         attention_mask=torch.from_numpy(real).long(), min_masks=min_masks)
        mask &= real  # a clip without spans gets a dummy span on a padding frame from transformers
        mask[mask.sum(1) == 1] = False
        negatives = _sample_negative_indices((len(lengths), frames), num_negatives, mask_time_indices=mask)
    return torch.from_numpy(mask), torch.from_numpy(negatives.astype(np.int64))


class SpanMaskingPipeline(DataPipeline):
    """Waveforms padded per batch, then span masks and negatives (fresh when training, seeded when evaluating)."""

    random_prepare = False  # prepare only preprocesses; the masks are drawn in collate, every batch anew

    def __init__(self, preprocessor: Preprocessor, *, kernels: Sequence[int], strides: Sequence[int],
                 mask_prob: float, mask_length: int, min_masks: int, num_negatives: int, training: bool) -> None:
        self.preprocessor = preprocessor
        self.kernels, self.strides = list(kernels), list(strides)
        self.mask_prob, self.mask_length, self.min_masks = mask_prob, mask_length, min_masks
        self.num_negatives = num_negatives
        self.training = training

    def prepare(self, example: Mapping[str, Any]) -> dict[str, Any]:
        return {"inputs": self.preprocessor(example)}

    def collate(self, items: Sequence[Mapping[str, Any]]) -> Batch:
        batch = self.collate_inputs([item["inputs"] for item in items])
        values, attention = batch["inputs"]["input_values"], batch["inputs"]["attention_mask"]
        lengths = conv_output_lengths(attention.sum(-1), self.kernels, self.strides).clamp_min(0)
        frames = int(conv_output_lengths(torch.tensor(values.shape[1]), self.kernels, self.strides))
        if self.training:
            seed = int(torch.randint(0, 2**31 - 1, ()))
        else:  # the same batch gets the same masks at every evaluation
            seed = zlib.crc32(values.numpy().tobytes(), zlib.crc32(attention.numpy().tobytes()))
        mask, negatives = sample_masks(lengths.tolist(), max(frames, 0), mask_prob=self.mask_prob,
                                       mask_length=self.mask_length, min_masks=self.min_masks,
                                       num_negatives=self.num_negatives, seed=seed)
        batch["meta"]["masked_frames"] = int(mask.sum())
        return {**batch, "mask_time_indices": mask, "sampled_negative_indices": negatives}


class _Metrics(torchmetrics.Metric):
    """Sums over validation batches (summed across ranks): losses, masked/real frames, hits, code counts."""

    full_state_update = False

    def __init__(self, groups: int, per_group: int) -> None:
        super().__init__()
        for name in ("contrastive", "diversity", "masked", "real", "correct"):
            self.add_state(name, default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("codes", default=torch.zeros(groups, per_group, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, outputs: Mapping[str, torch.Tensor]) -> None:
        masked = outputs["masked"].double()
        self.contrastive += outputs["contrastive_sum"].double()
        self.diversity += outputs["diversity_loss"].double() * masked
        self.masked += masked
        self.real += outputs["real"].double()
        self.correct += outputs["correct"].double()
        self.codes += outputs["code_counts"].double()

    def compute(self) -> dict[str, torch.Tensor]:
        masked = self.masked.clamp_min(1)
        usage = self.codes / self.codes.sum(-1, keepdim=True).clamp_min(1)
        perplexity = torch.exp(-torch.special.xlogy(usage, usage).sum(-1)).sum()
        return {"contrastive_loss": self.contrastive / masked, "diversity_loss": self.diversity / masked,
                "codebook_perplexity": perplexity, "accuracy": self.correct / masked,
                "masked_fraction": self.masked / self.real.clamp_min(1)}


class Wav2Vec2Pretraining(PretrainingObjective):
    """wav2vec 2.0 self-supervised pretraining of a ``wav2vec2`` backbone (defaults: transformers' config and
    pretraining script).

    Args:
        mask_time_prob: chance that a frame starts a masked span (0.65 in wav2vec 2.0 pretraining).
        mask_time_length: frames per masked span.
        mask_time_min_masks: spans per clip at least (when the clip is long enough).
        num_negatives: distractors per masked frame, from the same clip's masked frames.
        num_codevector_groups, num_codevectors_per_group: the quantiser's G groups of V code vectors.
        codevector_dim: size of a quantised vector (all groups together); proj_codevector_dim: the space where
            context and quantised vectors are compared.
        contrastive_logits_temperature: the cosine-similarity temperature (kappa).
        diversity_loss_weight: weight (alpha) of the codebook diversity loss.
        max_gumbel_temperature, min_gumbel_temperature, gumbel_temperature_decay: the Gumbel-softmax
            temperature starts at the maximum and is multiplied by the decay every optimizer step, down to the
            minimum.
        feat_quantizer_dropout: dropout on the conv features before quantisation.
    """

    def __init__(self, backbone: Backbone, *, mask_time_prob: float = 0.65, mask_time_length: int = 10,
                 mask_time_min_masks: int = 2, num_negatives: int = 100, num_codevector_groups: int = 2,
                 num_codevectors_per_group: int = 320, codevector_dim: int = 256, proj_codevector_dim: int = 256,
                 contrastive_logits_temperature: float = 0.1, diversity_loss_weight: float = 0.1,
                 max_gumbel_temperature: float = 2.0, min_gumbel_temperature: float = 0.5,
                 gumbel_temperature_decay: float = 0.999995, feat_quantizer_dropout: float = 0.0) -> None:
        super().__init__()
        from transformers.models.wav2vec2.modeling_wav2vec2 import Wav2Vec2GumbelVectorQuantizer

        _check_options(mask_time_prob, mask_time_length, mask_time_min_masks, num_negatives, num_codevector_groups,
                       num_codevectors_per_group, codevector_dim, proj_codevector_dim, contrastive_logits_temperature,
                       diversity_loss_weight, max_gumbel_temperature, min_gumbel_temperature,
                       gumbel_temperature_decay, feat_quantizer_dropout)
        config = getattr(getattr(backbone, "model", None), "config", None)
        if getattr(config, "model_type", None) != "wav2vec2" or not hasattr(backbone, "encode") \
                or getattr(config, "add_adapter", False):
            raise IncompatibleComponentsError(
                "objective wav2vec2 needs backbone 'wav2vec2' with model_type wav2vec2 and no adapter (HuBERT is "
                f"pretrained differently); got {type(backbone).__name__} ({getattr(config, 'model_type', None)})")
        self.backbone = backbone
        backbone.train_mask_embedding = True  # masked frames use it every step: trainable, never unused in DDP
        backbone.model.masked_spec_embed.requires_grad_(True)
        quantizer_config = copy.deepcopy(config)
        quantizer_config.num_codevector_groups = num_codevector_groups
        quantizer_config.num_codevectors_per_group = num_codevectors_per_group
        quantizer_config.codevector_dim = codevector_dim
        self.quantizer = Wav2Vec2GumbelVectorQuantizer(quantizer_config)
        nn.init.normal_(self.quantizer.weight_proj.weight, mean=0.0, std=1.0)  # transformers' _init_weights
        nn.init.zeros_(self.quantizer.weight_proj.bias)
        nn.init.uniform_(self.quantizer.codevectors)
        self.dropout_features = nn.Dropout(feat_quantizer_dropout)
        self.project_hid = nn.Linear(backbone.feature_dim, proj_codevector_dim)
        self.project_q = nn.Linear(codevector_dim, proj_codevector_dim)
        self.masking = {"mask_prob": mask_time_prob, "mask_length": mask_time_length,
                        "min_masks": mask_time_min_masks, "num_negatives": num_negatives}
        self.kernels, self.strides = list(config.conv_kernel), list(config.conv_stride)
        self.codes = num_codevector_groups * num_codevectors_per_group
        self.kappa = contrastive_logits_temperature
        self.diversity_weight = diversity_loss_weight
        self.gumbel = (max_gumbel_temperature, min_gumbel_temperature, gumbel_temperature_decay)
        self.updates = 0  # optimizer steps taken (checkpointed through get_extra_state)
        self.metrics = _Metrics(num_codevector_groups, num_codevectors_per_group)

    # -- data -----------------------------------------------------------------------------------------------
    def data_pipeline(self, *, training: bool) -> SpanMaskingPipeline:
        return SpanMaskingPipeline(self.backbone.preprocessor, kernels=self.kernels, strides=self.strides,
                                   training=training, **self.masking)

    # -- temperature ----------------------------------------------------------------------------------------
    @property
    def gumbel_temperature(self) -> float:
        high, low, decay = self.gumbel
        return max(high * decay ** self.updates, low)

    def callbacks(self) -> list[Callback]:
        return [*super().callbacks(), GumbelSchedule(self)]

    def get_extra_state(self) -> dict[str, int]:
        return {"updates": self.updates}

    def set_extra_state(self, state: Mapping[str, int]) -> None:
        self.updates = int(state["updates"])

    # -- the step -------------------------------------------------------------------------------------------
    def forward(self, batch: Batch) -> StepOutput:
        mask = batch["mask_time_indices"].to(torch.bool)
        negatives = batch["sampled_negative_indices"]
        self.quantizer.temperature = self.gumbel_temperature
        output, real = self.backbone.encode(batch["inputs"], mask_time_indices=mask)
        context = self.project_hid(output.last_hidden_state)
        extract = self.dropout_features(output.extract_features)
        has_masks = batch.get("meta", {}).get("masked_frames", 1) > 0  # counted on the CPU: no device sync
        quantized, perplexity = self.quantizer(extract, mask_time_indices=mask if has_masks else real)
        quantized = self.project_q(quantized.to(self.project_q.weight.dtype))

        predicted = context[mask].float()  # (N, D): masked real frames only
        dim = quantized.shape[-1]
        flat = quantized.reshape(-1, dim).float()
        target = flat[mask.flatten()]
        distractors = flat[negatives[mask]]  # (N, K, D)
        candidates = torch.cat([target[:, None], distractors], dim=1)
        logits = F.cosine_similarity(predicted[:, None], candidates, dim=-1) / self.kappa
        same = (distractors == target[:, None]).all(-1)  # a distractor equal to the target is no distractor
        logits = torch.cat([logits[:, :1], logits[:, 1:].masked_fill(same, float("-inf"))], dim=1)
        zeros = torch.zeros(logits.shape[0], dtype=torch.long, device=logits.device)
        contrastive_sum = F.cross_entropy(logits, zeros, reduction="sum")
        masked = mask.sum()
        diversity = (self.codes - perplexity.float()) / self.codes
        loss = contrastive_sum / masked.clamp_min(1) + self.diversity_weight * diversity
        outputs = {"contrastive_sum": contrastive_sum.detach(), "diversity_loss": diversity.detach(),
                   "masked": masked, "real": real.sum(), "perplexity": perplexity.detach(),
                   "correct": (logits[:, 0] > logits[:, 1:].amax(1)).sum()}
        if not self.training:
            outputs["code_counts"] = self._code_counts(extract, mask)
        return StepOutput(loss=loss, outputs=outputs)

    @torch.no_grad()
    def _code_counts(self, extract: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """How often each code of each group is chosen (argmax, as the quantiser in eval mode) on masked frames."""
        groups, per_group = self.quantizer.num_groups, self.quantizer.num_vars
        chosen = self.quantizer.weight_proj(extract[mask]).view(-1, groups, per_group).argmax(-1)
        return F.one_hot(chosen, per_group).sum(0).to(torch.float64)

    # -- metrics --------------------------------------------------------------------------------------------
    def update_metrics(self, batch: Batch, output: StepOutput) -> None:
        if "code_counts" in output.outputs:
            self.metrics.update(output.outputs)

    def compute_metrics(self) -> dict[str, float]:
        if not self.metrics.update_called:
            return {}
        values = {name: float(value) for name, value in self.metrics.compute().items()}
        return {**values, "gumbel_temperature": self.gumbel_temperature}

    def reset_metrics(self) -> None:
        self.metrics.reset()

    @torch.no_grad()
    def predict(self, batch: Batch) -> list[dict[str, Any]]:
        """The quantiser's code (one index per group) for every real frame of each clip."""
        output, real = self.backbone.encode(batch["inputs"])
        groups, per_group = self.quantizer.num_groups, self.quantizer.num_vars
        logits = self.quantizer.weight_proj(output.extract_features)
        codes = logits.view(*logits.shape[:2], groups, per_group).argmax(-1)
        return [{"codes": codes[row, : int(real[row].sum())].tolist()} for row in range(codes.shape[0])]


def _check_options(mask_time_prob: float, mask_time_length: int, min_masks: int, num_negatives: int, groups: int,
                   per_group: int, codevector_dim: int, proj_dim: int, kappa: float, diversity: float,
                   high: float, low: float, decay: float, dropout: float) -> None:
    problems = []
    if not 0.0 < mask_time_prob <= 1.0:
        problems.append(f"mask_time_prob must be in (0, 1], got {mask_time_prob}")
    if mask_time_length < 2:
        problems.append(f"mask_time_length must be >= 2 frames, got {mask_time_length}")
    if min_masks < 0 or num_negatives < 1 or groups < 1 or per_group < 2 or proj_dim < 1:
        problems.append("need mask_time_min_masks >= 0, num_negatives >= 1, num_codevector_groups >= 1, "
                        f"num_codevectors_per_group >= 2 and proj_codevector_dim >= 1; got {min_masks}, "
                        f"{num_negatives}, {groups}, {per_group}, {proj_dim}")
    if codevector_dim < groups or codevector_dim % groups:
        problems.append(f"codevector_dim {codevector_dim} must be a multiple of num_codevector_groups {groups}")
    if kappa <= 0 or diversity < 0 or not 0.0 <= dropout < 1.0:
        problems.append(f"need contrastive_logits_temperature > 0, diversity_loss_weight >= 0 and "
                        f"feat_quantizer_dropout in [0, 1); got {kappa}, {diversity}, {dropout}")
    if not 0 < low <= high or not 0 < decay <= 1:
        problems.append(f"need 0 < min_gumbel_temperature <= max_gumbel_temperature and 0 < "
                        f"gumbel_temperature_decay <= 1; got {low}, {high}, {decay}")
    if problems:
        raise ConfigError("objective wav2vec2: " + "; ".join(problems))


__all__ = ["SpanMaskingPipeline", "Wav2Vec2Pretraining", "conv_output_lengths", "sample_masks"]


class GumbelSchedule(Callback):
    """Counts optimizer steps for the objective's Gumbel temperature (once per step, whatever the accumulation)."""

    def __init__(self, objective: Wav2Vec2Pretraining) -> None:
        self.objective = objective

    def on_train_step_end(self, trainer: Any, step: int, loss: Any, batch: Any, output: Any) -> None:
        self.objective.updates += 1

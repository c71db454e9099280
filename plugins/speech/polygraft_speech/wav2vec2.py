"""The ``wav2vec2`` backbone: Hugging Face ``Wav2Vec2Model`` (or ``HubertModel``) over raw 16 kHz waveforms.

Built from a local Hugging Face directory (``weights=``: ``config.json`` + safetensors, or a weights-only
``pytorch_model.bin``; pickles holding objects are refused), from an exported ``config`` (how polygraft rebuilds
a saved model), or from a size preset for random initialisation: ``tiny`` (hidden 32, 2 layers, 3 conv layers:
tests), ``small`` (hidden 256, 4 layers, 256-channel conv stack: CPU pretraining), ``base`` (wav2vec2-base
sizes: hidden 768, 12 layers, 512-channel conv stack). Presets use layer-normalised conv features and pre-LN
transformer layers, so padded batches give the same frames as single clips. A few named options override the
preset. The Hugging Face model stays ``self.model`` (LoRA wraps ``q_proj`` / ``v_proj`` there).

Features: ``sequence`` (B, frames, hidden) with ``mask`` derived from the sample attention mask through the
conv stack's output lengths; ``pooled`` is the masked mean. SpecAugment (``mask_time_prob``,
``mask_feature_prob``) is opt-in and applies only in training mode; its mask embedding always exists (so the
parameters never depend on the options) but trains only when time masking is on or ``train_mask_embedding`` is
set. ``freeze_feature_encoder`` keeps the conv stack frozen through ``freeze()`` / ``unfreeze()``.

Example:
    >>> import numpy as np, polygraft
    >>> backbone = polygraft.create_backbone("wav2vec2", size="tiny").eval()
    >>> pre = backbone.preprocessor
    >>> batch = pre.collate([pre({"audio": np.random.randn(16000).astype("float32"), "sample_rate": 16000})])
    >>> features = backbone(batch)
    >>> features.sequence.shape, features.pooled.shape
    (torch.Size([1, 49, 32]), torch.Size([1, 32]))
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from polygraft.errors import ConfigError, WeightsError
from polygraft.features import Features
from polygraft.interfaces import AttributionHooks
from polygraft.interfaces.backbone import Backbone
from polygraft_speech.preprocess import WaveformPreprocessor

logger = logging.getLogger(__name__)

MODEL_TYPES = ("wav2vec2", "hubert")
_COMMON = {"feat_extract_norm": "layer", "do_stable_layer_norm": True, "conv_bias": True, "layerdrop": 0.0}
PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {**_COMMON, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
             "intermediate_size": 64, "conv_dim": [32, 32, 32], "conv_kernel": [10, 8, 8],
             "conv_stride": [5, 8, 8], "num_conv_pos_embeddings": 16, "num_conv_pos_embedding_groups": 4},
    "small": {**_COMMON, "hidden_size": 256, "num_hidden_layers": 4, "num_attention_heads": 4,
              "intermediate_size": 1024, "conv_dim": [256] * 7, "conv_kernel": [10, 3, 3, 3, 3, 2, 2],
              "conv_stride": [5, 2, 2, 2, 2, 2, 2], "num_conv_pos_embeddings": 64,
              "num_conv_pos_embedding_groups": 16},
    "base": {**_COMMON, "hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12,
             "intermediate_size": 3072, "conv_dim": [512] * 7, "conv_kernel": [10, 3, 3, 3, 3, 2, 2],
             "conv_stride": [5, 2, 2, 2, 2, 2, 2], "num_conv_pos_embeddings": 128,
             "num_conv_pos_embedding_groups": 16},
}
"""Every preset downsamples 320x: 49 frames per second of 16 kHz audio, as wav2vec2."""


class Wav2Vec2Backbone(Backbone):
    """A wav2vec2 / HuBERT encoder yielding frame sequences (with mask) and a masked-mean pooled vector."""

    modality = "speech"

    def __init__(self, model: nn.Module, preprocessor: WaveformPreprocessor, *,
                 freeze_feature_encoder: bool = False) -> None:
        super().__init__()
        self.model = model
        self._preprocessor = preprocessor
        self.feature_dim = int(model.config.hidden_size)
        self.freeze_feature_encoder = bool(freeze_feature_encoder)
        #: train the SpecAugment mask embedding even with mask_time_prob 0 (objectives that pass
        #: ``mask_time_indices`` set it); otherwise it stays frozen, so DDP never sees an unused trainable parameter
        self.train_mask_embedding = False
        # checkpoints with group-normalised conv features (wav2vec2-base) were trained without attention masks:
        # HF's advice is to pass none and pad with zeros; frames are still masked in the features
        self.uses_attention_mask = getattr(model.config, "feat_extract_norm", "layer") == "layer"
        self.weights_report: dict[str, Any] = {"source": None}
        self._apply_freeze_rules()

    @property
    def preprocessor(self) -> WaveformPreprocessor:
        return self._preprocessor

    @property
    def config(self) -> Any:
        return self.model.config

    def _apply_freeze_rules(self) -> None:
        if self.freeze_feature_encoder:
            self.model.freeze_feature_encoder()
        embedding = getattr(self.model, "masked_spec_embed", None)
        if isinstance(embedding, nn.Parameter) and not (self.train_mask_embedding or self.config.mask_time_prob > 0):
            embedding.requires_grad_(False)

    def freeze(self, trainable_layers: int = 0) -> None:
        super().freeze(trainable_layers)
        self._apply_freeze_rules()

    def unfreeze(self) -> None:
        super().unfreeze()
        self._apply_freeze_rules()

    def frame_lengths(self, sample_lengths: torch.Tensor) -> torch.Tensor:
        """Frames the conv stack yields for clips of ``sample_lengths`` samples."""
        return self.model._get_feat_extract_output_lengths(sample_lengths).to(torch.long)

    def encode(self, inputs: Mapping[str, Any], *,
               mask_time_indices: torch.Tensor | None = None) -> tuple[Any, torch.Tensor]:
        """The Hugging Face model's output and the frame mask (B, frames), True on real frames.

        The output holds ``last_hidden_state`` and, for wav2vec2, ``extract_features`` (the normalised conv
        features a quantiser reads). ``mask_time_indices`` (B, frames) bool replaces those frames by the mask
        embedding before the transformer (pretraining objectives; set ``train_mask_embedding`` to train it).
        """
        values = inputs["input_values"]
        attention = inputs.get("attention_mask")
        if attention is None:
            attention = torch.ones(values.shape, dtype=torch.long, device=values.device)
        output = self.model(values, attention_mask=attention if self.uses_attention_mask else None,
                            mask_time_indices=mask_time_indices)
        lengths = self.frame_lengths(attention.sum(-1))
        frames = output.last_hidden_state.shape[1]
        mask = torch.arange(frames, device=values.device)[None, :] < lengths[:, None]
        return output, mask

    def forward(self, inputs: Mapping[str, Any]) -> Features:
        output, mask = self.encode(inputs, mask_time_indices=inputs.get("mask_time_indices"))
        features = Features(sequence=output.last_hidden_state, mask=mask)
        features.pooled = features.pool()
        return features

    def attribution_hooks(self) -> AttributionHooks:
        """The normalised waveform against silence (zeros), in frames of the conv stack's hop (320 samples)."""
        hop = 1
        for stride in self.config.conv_stride:
            hop *= int(stride)
        return AttributionHooks(input="input_values", kind="waveform", baseline=0.0, frame_size=hop,
                                seconds_per_step=1.0 / self.preprocessor.sample_rate)

    def layer_groups(self) -> list[nn.Module]:
        """Input → output: feature encoder + projection (+ positional conv, mask embedding), then one group per
        transformer layer (the last also holds a final layer norm / adapter). Covers every parameter once."""
        model = self.model
        encoder = model.encoder
        stable = bool(getattr(model.config, "do_stable_layer_norm", False))
        first: list[nn.Module] = [model.feature_extractor, model.feature_projection, encoder.pos_conv_embed]
        if not stable:
            first.append(encoder.layer_norm)  # post-LN encoders normalise before the first layer
        if isinstance(getattr(model, "masked_spec_embed", None), nn.Parameter):
            first.append(nn.ParameterList([model.masked_spec_embed]))
        layers = [nn.ModuleList([layer]) for layer in encoder.layers]
        tail = [encoder.layer_norm] if stable else []
        if getattr(model, "adapter", None) is not None:
            tail.append(model.adapter)
        layers[-1].extend(tail)
        return [nn.ModuleList(first), *layers]

    def shard_units(self) -> list[nn.Module]:
        """``trainer.distributed: fsdp`` shards the convolutional feature encoder and each transformer layer one
        by one (the projection, positional convolution and norms stay with the rest of the model)."""
        return [self.model.feature_extractor, *self.model.encoder.layers]

    def export_input_axes(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        """ONNX export: clips vary in length (``samples``)."""
        return {key: {1: "samples"} for key in ("input_values", "attention_mask") if key in inputs}

    def export(self, directory: Path) -> dict[str, Any]:
        """Save the HF config (``config.json``) into ``directory``; the options rebuild this architecture there."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.model.config.save_pretrained(str(directory))
        config = self.model.config
        return {"config": str(directory), "freeze_feature_encoder": self.freeze_feature_encoder,
                "mask_time_prob": float(config.mask_time_prob), "mask_time_length": int(config.mask_time_length),
                "mask_feature_prob": float(config.mask_feature_prob),
                "mask_feature_length": int(config.mask_feature_length),
                "sample_rate": self.preprocessor.sample_rate, "normalize": self.preprocessor.normalize,
                "max_seconds": self.preprocessor.max_seconds}


def _model_class(model_type: str) -> Any:
    from transformers import HubertModel, Wav2Vec2Model

    return {"wav2vec2": Wav2Vec2Model, "hubert": HubertModel}[model_type]


def _config_class(model_type: str) -> Any:
    from transformers import HubertConfig, Wav2Vec2Config

    return {"wav2vec2": Wav2Vec2Config, "hubert": HubertConfig}[model_type]


def _read_config(location: Path, what: str) -> tuple[str, Any]:
    """``(model_type, config)`` from a directory holding ``config.json`` or a JSON file."""
    file = location / "config.json" if location.is_dir() else location
    try:
        values = json.loads(file.read_text())
    except (OSError, ValueError) as exc:
        raise WeightsError(f"{file}: cannot read the {what} config ({exc}); give a Hugging Face model directory "
                           "with config.json") from exc
    model_type = values.get("model_type", "wav2vec2")
    if model_type not in MODEL_TYPES:
        raise WeightsError(f"{file}: model_type {model_type!r} is not a wav2vec2-family encoder ({MODEL_TYPES})")
    return model_type, _config_class(model_type).from_dict(values)


def _load_weights(directory: Path, config: Any, model_type: str) -> nn.Module:
    """``from_pretrained`` restricted to safetensors or weights-only torch files; missing weights are an error."""
    from transformers.utils import logging as hf_logging

    safetensors = sorted(directory.glob("*.safetensors"))
    if not safetensors and not (directory / "pytorch_model.bin").is_file():
        raise WeightsError(f"{directory} has a config.json but no model.safetensors or pytorch_model.bin")
    previous, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()  # a sub-second load needs no bar
    try:
        model, info = _model_class(model_type).from_pretrained(
            str(directory), config=config, use_safetensors=bool(safetensors), weights_only=True,
            output_loading_info=True)
    except Exception as exc:  # transformers raises many kinds; none may escape bare
        if not safetensors and any(word in str(exc) for word in ("weights_only", "Unpickl", "pickle", "GLOBAL")):
            raise WeightsError(f"{directory / 'pytorch_model.bin'} holds pickled Python objects, which polygraft "
                               "refuses to load; convert the checkpoint to safetensors") from exc
        raise WeightsError(f"cannot load {model_type} weights from {directory}: {exc}") from exc
    finally:
        hf_logging.set_verbosity(previous)
        if bars:
            hf_logging.enable_progress_bar()
    missing = [key for key in info.get("missing_keys", []) if "masked_spec_embed" not in key]
    if missing:
        raise WeightsError(f"{directory}: these weights are missing from the checkpoint and would stay random: "
                           f"{sorted(missing)[:8]} - is it a {model_type} checkpoint?")
    unexpected = info.get("unexpected_keys", [])
    if unexpected:
        logger.info("%s: ignored %d weights the encoder does not use (heads): %s", directory, len(unexpected),
                    sorted(unexpected)[:5])
    return model


def _preprocessor_defaults(directory: Path | None) -> dict[str, Any]:
    """``sampling_rate`` / ``do_normalize`` from a checkpoint's ``preprocessor_config.json`` when present."""
    file = directory / "preprocessor_config.json" if directory is not None else None
    if file is None or not file.is_file():
        return {}
    try:
        values = json.loads(file.read_text())
    except (OSError, ValueError):
        return {}
    found: dict[str, Any] = {}
    if "sampling_rate" in values:
        found["sample_rate"] = int(values["sampling_rate"])
    if "do_normalize" in values:
        found["normalize"] = bool(values["do_normalize"])
    return found


def create_wav2vec2_backbone(*, weights: str | None = None, config: str | None = None, size: str | None = None,
                             model_type: str = "wav2vec2", hidden_size: int | None = None,
                             num_hidden_layers: int | None = None, num_attention_heads: int | None = None,
                             intermediate_size: int | None = None, conv_dim: list[int] | None = None,
                             layerdrop: float | None = None, freeze_feature_encoder: bool = False,
                             mask_time_prob: float = 0.0, mask_time_length: int = 10,
                             mask_feature_prob: float = 0.0, mask_feature_length: int = 10,
                             sample_rate: int | None = None, normalize: bool | None = None,
                             max_seconds: float | None = 30.0) -> Wav2Vec2Backbone:
    """Factory registered as backbone ``wav2vec2``.

    Args:
        weights: a local Hugging Face directory (``config.json`` + ``model.safetensors``); aliases and polygraft
            model directories are resolved by core first.
        config: a config directory or ``config.json`` for a random-init model of that architecture.
        size: ``tiny``, ``small`` (default for random init) or ``base``.
        model_type: ``wav2vec2`` or ``hubert`` (random init; checkpoints say their own).
        hidden_size, num_hidden_layers, num_attention_heads, intermediate_size, conv_dim: override the preset
            (``conv_dim`` keeps the preset's number of conv layers). ``layerdrop``: the chance a layer is skipped
            in training.
        freeze_feature_encoder: keep the conv feature encoder frozen (usual when fine-tuning).
        mask_time_prob, mask_time_length, mask_feature_prob, mask_feature_length: SpecAugment in training mode
            (off by default).
        sample_rate, normalize: preprocessing (defaults: the checkpoint's preprocessor_config.json, else 16 kHz,
            normalised).
        max_seconds: longer clips are cut to their first 30 s by default (counted in the run log and results;
            attention memory grows with the square of a clip's length); ``null`` keeps every clip whole.
    """
    if model_type not in MODEL_TYPES:
        raise ConfigError(f"wav2vec2 model_type must be one of {MODEL_TYPES}, got {model_type!r}")
    if size is not None and size not in PRESETS:
        raise ConfigError(f"wav2vec2 size must be one of {sorted(PRESETS)}, got {size!r}")
    for name, prob in (("mask_time_prob", mask_time_prob), ("mask_feature_prob", mask_feature_prob)):
        if not 0.0 <= prob < 1.0:
            raise ConfigError(f"{name} must be in [0, 1), got {prob}")
    overrides = {k: v for k, v in (("hidden_size", hidden_size), ("num_hidden_layers", num_hidden_layers),
                                   ("num_attention_heads", num_attention_heads),
                                   ("intermediate_size", intermediate_size), ("conv_dim", conv_dim))
                 if v is not None}
    if (weights is not None or config is not None) and (overrides or size is not None):
        raise ConfigError(f"give either weights/config or an architecture (size, {sorted(overrides)}), not both")
    if weights is not None and config is not None:
        raise ConfigError("give either weights=... (a Hugging Face directory) or config=..., not both")
    directory = Path(weights).expanduser() if weights is not None else None
    if directory is not None:
        if not (directory / "config.json").is_file():
            raise WeightsError(f"{directory} is not a Hugging Face model directory (no config.json); give a "
                               "directory saved with save_pretrained, a polygraft model directory or a registered "
                               "alias")
        model_type, hf_config = _read_config(directory, "checkpoint")
    elif config is not None:
        model_type, hf_config = _read_config(Path(config).expanduser(), "model")
    else:
        values = {**PRESETS[size or "small"], **overrides}
        layers = len(PRESETS[size or "small"]["conv_dim"])
        if len(values["conv_dim"]) != layers:
            raise ConfigError(f"conv_dim needs {layers} entries (one per conv layer of this preset), got "
                              f"{values['conv_dim']}")
        for divisor in ("num_attention_heads", "num_conv_pos_embedding_groups"):
            if values["hidden_size"] % values[divisor]:
                raise ConfigError(f"hidden_size {values['hidden_size']} must be divisible by {divisor} "
                                  f"{values[divisor]}")
        hf_config = _config_class(model_type)(**values)
    if layerdrop is not None:
        hf_config.layerdrop = float(layerdrop)
    # the mask embedding always exists (HF creates it when a mask probability is > 0 at construction), so the
    # parameters never depend on whether SpecAugment is on; the real probabilities are set right after
    hf_config.mask_time_prob, hf_config.mask_feature_prob = max(mask_time_prob, 0.05), mask_feature_prob
    hf_config.apply_spec_augment = True  # explicit mask_time_indices (pretraining objectives) always apply
    model = _load_weights(directory, hf_config, model_type) if directory is not None else \
        _model_class(model_type)(hf_config)
    model.config.mask_time_prob, model.config.mask_time_length = float(mask_time_prob), int(mask_time_length)
    model.config.mask_feature_prob = float(mask_feature_prob)
    model.config.mask_feature_length = int(mask_feature_length)
    defaults = _preprocessor_defaults(directory or (Path(config) if config and Path(config).is_dir() else None))
    preprocessor = WaveformPreprocessor(
        sample_rate=sample_rate if sample_rate is not None else defaults.get("sample_rate", 16_000),
        normalize=normalize if normalize is not None else defaults.get("normalize", True), max_seconds=max_seconds)
    backbone = Wav2Vec2Backbone(model, preprocessor, freeze_feature_encoder=freeze_feature_encoder)
    backbone.weights_report = {"source": str(directory) if directory is not None else None}
    options: dict[str, Any] = {"model_type": model_type, "freeze_feature_encoder": freeze_feature_encoder,
                               "mask_time_prob": mask_time_prob, "mask_time_length": mask_time_length,
                               "mask_feature_prob": mask_feature_prob, "mask_feature_length": mask_feature_length,
                               "sample_rate": preprocessor.sample_rate, "normalize": preprocessor.normalize,
                               "max_seconds": preprocessor.max_seconds}
    if config is not None:
        options["config"] = str(config)
    elif directory is None:
        options.update({"size": size or "small", **overrides})
    if layerdrop is not None:
        options["layerdrop"] = layerdrop
    backbone.build_options = options
    return backbone


__all__ = ["PRESETS", "Wav2Vec2Backbone", "create_wav2vec2_backbone"]

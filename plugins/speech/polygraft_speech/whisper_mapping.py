"""Strict conversion of a CTranslate2 Whisper ``model.bin`` into transformers' Whisper modules.

Every tensor of the file maps onto a named parameter of ``WhisperForConditionalGeneration`` (or is one of the
spec's settings, which are checked), and every parameter is filled exactly once; otherwise a
:class:`~polygraft.errors.WeightsError` names the file, the tensors left over and the parameters left empty.
Self-attention q/k/v arrive fused (``linear_0``: ``[3D, D]``) and are split; cross-attention arrives as q
(``linear_0``) plus fused k/v (``linear_1``). Whisper's key projection has no bias, so the fused k bias must be
zero (checked). The output projection is an alias of the token embeddings (tied). float16 becomes float32.

The architecture (d_model, layers, heads, mel bins, vocabulary, positions) is read from the file's shapes and
settings and built in code with :func:`whisper_config` (its defaults are Whisper tiny.en), never from a hub.

Example:
    >>> from polygraft_speech.whisper_mapping import whisper_config
    >>> config = whisper_config()
    >>> config.d_model, config.encoder_layers, config.encoder_attention_heads, config.num_mel_bins
    (384, 4, 6, 80)
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from polygraft.errors import WeightsError
from polygraft_speech.ctranslate2_format import CTranslate2Model, read_model_bin

TINY_EN: dict[str, int] = {"d_model": 384, "encoder_layers": 4, "decoder_layers": 4, "encoder_heads": 6,
                           "decoder_heads": 6, "ffn_dim": 1536, "num_mel_bins": 80, "vocab_size": 51864,
                           "max_source_positions": 1500, "max_target_positions": 448}
"""Whisper tiny.en's architecture (the defaults of :func:`whisper_config`)."""
SPECIAL_TOKENS = {"<|endoftext|>": 50256, "<|startoftranscript|>": 50257, "<|notimestamps|>": 50362}
"""tiny.en's ids, used when the model folder has no vocabulary.txt to read them from."""
ACTIVATION_GELU = 3  # ctranslate2.specs.common_spec.Activation.GELU
SETTINGS = {"decoder/activation": ACTIVATION_GELU, "decoder/alibi": 0, "decoder/pre_norm": 1,
            "decoder/scale_embeddings": 0, "decoder/start_from_zero_embedding": 0}
"""Spec settings stored as scalars, with the value transformers' Whisper implies."""
DECODING_HINTS = ("decoder/alignment_heads", "decoder/alignment_layer")
"""Scalars that only steer CTranslate2's word alignment; read and ignored (they hold no weights)."""


def whisper_config(*, d_model: int = 384, encoder_layers: int = 4, decoder_layers: int = 4, encoder_heads: int = 6,
                   decoder_heads: int = 6, ffn_dim: int = 1536, num_mel_bins: int = 80, vocab_size: int = 51864,
                   max_source_positions: int = 1500, max_target_positions: int = 448) -> Any:
    """A transformers ``WhisperConfig`` built in code (defaults: tiny.en, English-only vocabulary of 51,864).
    Decoding settings (suppressed tokens...) live in the generation config, see :func:`load_whisper`."""
    from transformers import WhisperConfig

    return WhisperConfig(d_model=d_model, encoder_layers=encoder_layers, decoder_layers=decoder_layers,
                         encoder_attention_heads=encoder_heads, decoder_attention_heads=decoder_heads,
                         encoder_ffn_dim=ffn_dim, decoder_ffn_dim=ffn_dim, num_mel_bins=num_mel_bins,
                         vocab_size=vocab_size, max_source_positions=max_source_positions,
                         max_target_positions=max_target_positions, suppress_tokens=None,
                         begin_suppress_tokens=None, tie_word_embeddings=True)


def _need(model: CTranslate2Model, name: str, rank: int) -> np.ndarray:
    value = model.variables.get(name)
    if value is None or value.ndim != rank:
        found = "missing" if value is None else f"rank {value.ndim}"
        raise WeightsError(f"{model.path}: tensor {name!r} is {found}, expected rank {rank}; "
                           "this is not a CTranslate2 Whisper model")
    return value


def config_values(model: CTranslate2Model) -> dict[str, int]:
    """The architecture of a CTranslate2 Whisper file, read from its shapes and settings."""
    if model.spec != "WhisperSpec":
        raise WeightsError(f"{model.path}: spec {model.spec!r} is not a CTranslate2 Whisper model (WhisperSpec)")

    def layers(side: str) -> int:
        found = {int(m.group(1)) for k in model.variables if (m := re.match(rf"{side}/layer_(\d+)/", k))}
        return max(found) + 1 if found else 0

    conv1 = _need(model, "encoder/conv1/weight", 3)
    return {"d_model": int(conv1.shape[0]), "num_mel_bins": int(conv1.shape[1]),
            "encoder_layers": layers("encoder"), "decoder_layers": layers("decoder"),
            "encoder_heads": int(_need(model, "encoder/num_heads", 0)),
            "decoder_heads": int(_need(model, "decoder/num_heads", 0)),
            "ffn_dim": int(_need(model, "encoder/layer_0/ffn/linear_0/weight", 2).shape[0]),
            "vocab_size": int(_need(model, "decoder/embeddings/weight", 2).shape[0]),
            "max_source_positions": int(_need(model, "encoder/position_encodings/encodings", 2).shape[0]),
            "max_target_positions": int(_need(model, "decoder/position_encodings/encodings", 2).shape[0])}


@dataclass(frozen=True)
class Rule:
    """Where one CTranslate2 tensor goes: ``(parameter, first row, end row)`` slices along dim 0 (``end`` -1 =
    the whole tensor), the rows it must have when split, and rows that must be zero (the fused key bias)."""

    targets: tuple[tuple[str, int, int], ...]
    rows: int | None = None
    zero: tuple[int, int] | None = None


def _fused(rules: dict[str, Rule], ct2: str, hf: str, d: int, parts: Sequence[str]) -> None:
    """A linear whose weight stacks the ``parts`` projections along dim 0 (k_proj has no bias in Whisper)."""
    rows = len(parts) * d
    rules[f"{ct2}/weight"] = Rule(tuple((f"{hf}.{p}.weight", i * d, (i + 1) * d) for i, p in enumerate(parts)), rows)
    biased = tuple((f"{hf}.{p}.bias", i * d, (i + 1) * d) for i, p in enumerate(parts) if p != "k_proj")
    zero = (parts.index("k_proj") * d, (parts.index("k_proj") + 1) * d) if "k_proj" in parts else None
    rules[f"{ct2}/bias"] = Rule(biased, rows, zero)


def mapping_rules(config: Any) -> dict[str, Rule]:
    """CTranslate2 tensor name → the transformers parameters (or row slices) it fills."""
    d = config.d_model
    rules: dict[str, Rule] = {}

    def whole(ct2: str, hf: str) -> None:
        rules[ct2] = Rule(((hf, 0, -1),))

    def norm(ct2: str, hf: str) -> None:
        whole(f"{ct2}/gamma", f"{hf}.weight")
        whole(f"{ct2}/beta", f"{hf}.bias")

    def linear(ct2: str, hf: str) -> None:
        whole(f"{ct2}/weight", f"{hf}.weight")
        whole(f"{ct2}/bias", f"{hf}.bias")

    for conv in ("conv1", "conv2"):
        linear(f"encoder/{conv}", f"model.encoder.{conv}")
    whole("encoder/position_encodings/encodings", "model.encoder.embed_positions.weight")
    norm("encoder/layer_norm", "model.encoder.layer_norm")
    whole("decoder/embeddings/weight", "model.decoder.embed_tokens.weight")
    whole("decoder/position_encodings/encodings", "model.decoder.embed_positions.weight")
    norm("decoder/layer_norm", "model.decoder.layer_norm")
    for side, count in (("encoder", config.encoder_layers), ("decoder", config.decoder_layers)):
        for i in range(count):
            ct2, hf = f"{side}/layer_{i}", f"model.{side}.layers.{i}"
            norm(f"{ct2}/self_attention/layer_norm", f"{hf}.self_attn_layer_norm")
            _fused(rules, f"{ct2}/self_attention/linear_0", f"{hf}.self_attn", d, ("q_proj", "k_proj", "v_proj"))
            linear(f"{ct2}/self_attention/linear_1", f"{hf}.self_attn.out_proj")
            norm(f"{ct2}/ffn/layer_norm", f"{hf}.final_layer_norm")
            linear(f"{ct2}/ffn/linear_0", f"{hf}.fc1")
            linear(f"{ct2}/ffn/linear_1", f"{hf}.fc2")
            if side == "decoder":
                norm(f"{ct2}/attention/layer_norm", f"{hf}.encoder_attn_layer_norm")
                _fused(rules, f"{ct2}/attention/linear_0", f"{hf}.encoder_attn", d, ("q_proj",))
                _fused(rules, f"{ct2}/attention/linear_1", f"{hf}.encoder_attn", d, ("k_proj", "v_proj"))
                linear(f"{ct2}/attention/linear_2", f"{hf}.encoder_attn.out_proj")
    return rules


def _reference(config: Any) -> dict[str, tuple[int, ...]]:
    """Parameter names and shapes of the full model (meta tensors: no memory, no init cost)."""
    from transformers import WhisperForConditionalGeneration

    with torch.device("meta"):
        model = WhisperForConditionalGeneration(config)
    if model.proj_out.weight is not model.model.decoder.embed_tokens.weight:
        raise WeightsError("transformers did not tie Whisper's output projection to its token embeddings")
    return {name: tuple(p.shape) for name, p in model.named_parameters()}  # proj_out.weight: tied, listed once


def _check_settings(model: CTranslate2Model, config: Any) -> None:
    if model.aliases != {"decoder/projection/weight": "decoder/embeddings/weight"}:
        raise WeightsError(f"{model.path}: aliases {model.aliases} are not Whisper's tied output projection "
                           "(decoder/projection/weight → decoder/embeddings/weight); untied or foreign model")
    for name, expected in {**SETTINGS, "encoder/num_heads": config.encoder_attention_heads,
                           "decoder/num_heads": config.decoder_attention_heads}.items():
        value = model.variables.get(name)
        if value is None or value.ndim != 0 or int(value) != expected:
            raise WeightsError(f"{model.path}: setting {name!r} is {None if value is None else value.tolist()}, "
                               f"transformers' Whisper needs {expected}")


def convert_whisper(model: CTranslate2Model, config: Any) -> dict[str, torch.Tensor]:
    """The float32 state dict of ``WhisperForConditionalGeneration`` (without the tied ``proj_out.weight``)."""
    where = model.path
    _check_settings(model, config)
    reference = _reference(config)
    rules = mapping_rules(config)
    filled: Counter[str] = Counter()
    state: dict[str, torch.Tensor] = {}
    unused: list[str] = []
    for name, value in model.variables.items():
        if name in SETTINGS or name in DECODING_HINTS or name in ("encoder/num_heads", "decoder/num_heads"):
            continue
        rule = rules.get(name)
        if rule is None:
            unused.append(f"{name} {list(value.shape)}")
            continue
        if model.dtypes[name] not in ("float16", "float32", "bfloat16"):
            raise WeightsError(f"{where}: tensor {name!r} is stored as {model.dtypes[name]} (a quantized model); "
                               "only float16/float32/bfloat16 Whisper models are supported")
        if rule.rows is not None and (value.ndim == 0 or value.shape[0] != rule.rows):
            raise WeightsError(f"{where}: tensor {name!r} has shape {list(value.shape)}; as the fused "
                               f"{[t for t, _, _ in rule.targets]} it needs {rule.rows} rows")
        array = value.astype(np.float32)
        if rule.zero is not None and np.any(array[rule.zero[0]:rule.zero[1]] != 0):
            raise WeightsError(f"{where}: tensor {name!r} holds a non-zero key bias (max |b| = "
                               f"{float(np.abs(array[rule.zero[0]:rule.zero[1]]).max()):.3g}); Whisper's key "
                               "projection has no bias")
        for target, start, end in rule.targets:
            part = array if end < 0 else array[start:end]
            if tuple(part.shape) != reference.get(target):
                expected = reference.get(target)
                raise WeightsError(f"{where}: tensor {name!r} {list(value.shape)} does not map onto {target} "
                                   f"{'(no such parameter)' if expected is None else list(expected)}")
            state[target] = torch.from_numpy(np.ascontiguousarray(part))
            filled[target] += 1
    unfilled = sorted(set(reference) - set(filled))
    twice = sorted(k for k, n in filled.items() if n > 1)
    if unused or unfilled or twice:
        raise WeightsError(f"{where}: the tensors do not fill transformers' Whisper exactly once: unused tensors "
                           f"{unused}, unfilled parameters {unfilled}, filled twice {twice}")
    return state


def read_vocabulary(folder: Path) -> list[str] | None:
    """The tokens of ``vocabulary.txt`` beside model.bin (one per line), or None when the folder has none."""
    path = folder / "vocabulary.txt"
    return path.read_text(encoding="utf-8").split("\n")[:-1] if path.is_file() else None


def model_bin_path(weights: str | Path) -> Path:
    """``weights`` itself (a model.bin file) or ``weights/model.bin``; WeightsError when neither exists."""
    path = Path(weights)
    if path.is_dir():
        path = path / "model.bin"
    if not path.is_file():
        raise WeightsError(f"{weights}: no CTranslate2 model.bin there; pass the Whisper model folder (holding "
                           "model.bin) or the file itself, or the alias 'whisper-tiny-en'")
    return path


def read_whisper(weights: str | Path) -> tuple[Any, dict[str, torch.Tensor], dict[str, Any]]:
    """``(config, float32 state dict, report)`` of a CTranslate2 Whisper folder or model.bin file."""
    path = model_bin_path(weights)
    model = read_model_bin(path)
    values = config_values(model)
    vocabulary = read_vocabulary(path.parent)
    if vocabulary is not None and len(vocabulary) != values["vocab_size"]:
        raise WeightsError(f"{path.parent / 'vocabulary.txt'}: {len(vocabulary)} tokens, but the embeddings of "
                           f"{path} have {values['vocab_size']} rows")
    decoding = {"suppress_ids": [], "suppress_ids_begin": [220, SPECIAL_TOKENS["<|endoftext|>"]]}
    if (path.parent / "config.json").is_file():  # CTranslate2's decoding settings
        try:
            found = json.loads((path.parent / "config.json").read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise WeightsError(f"{path.parent / 'config.json'}: unreadable ({exc})") from exc
        decoding = {key: list(found.get(key) or default) for key, default in decoding.items()}
    config = whisper_config(**values)
    state = convert_whisper(model, config)
    special = dict(SPECIAL_TOKENS)
    if vocabulary is not None:
        index = {token: i for i, token in enumerate(vocabulary)}
        special = {token: index.get(token, default) for token, default in SPECIAL_TOKENS.items()}
    report = {**model.describe(), "config": values, "special_tokens": special, "converted_to": "float32",
              "suppress_tokens": decoding["suppress_ids"], "begin_suppress_tokens": decoding["suppress_ids_begin"]}
    return config, state, report


def load_whisper(weights: str | Path) -> Any:
    """The full ``WhisperForConditionalGeneration`` (encoder + decoder, tied output projection), English-only
    greedy-decoding settings in its generation config (as tiny.en: no language token, no timestamps)."""
    from transformers import GenerationConfig, WhisperForConditionalGeneration

    config, state, report = read_whisper(weights)
    if config.vocab_size != TINY_EN["vocab_size"]:
        raise WeightsError(f"{weights}: a vocabulary of {config.vocab_size} tokens is not an English-only Whisper; "
                           "load_whisper sets English-only decoding (the whisper-encoder backbone reads any size)")
    with torch.device("meta"):
        model = WhisperForConditionalGeneration(config)
    model.load_state_dict(state, strict=False, assign=True)
    model.proj_out.weight = model.model.decoder.embed_tokens.weight
    missing = [n for n, p in model.named_parameters() if p.is_meta]
    if missing:
        raise WeightsError(f"{weights}: parameters left unfilled after conversion: {missing}")
    special = report["special_tokens"]
    model.generation_config = GenerationConfig(
        decoder_start_token_id=special["<|startoftranscript|>"], eos_token_id=special["<|endoftext|>"],
        pad_token_id=special["<|endoftext|>"], bos_token_id=special["<|endoftext|>"],
        suppress_tokens=report["suppress_tokens"], begin_suppress_tokens=report["begin_suppress_tokens"],
        is_multilingual=False, no_timestamps_token_id=special["<|notimestamps|>"],
        max_length=config.max_target_positions)
    model.weights_report = report
    return model.eval()

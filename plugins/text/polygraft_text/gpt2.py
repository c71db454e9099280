"""The ``gpt2`` backbone: a GPT-2-architecture causal transformer (transformers' ``GPT2LMHeadModel``).

Random initialisation by default, from a size preset (``size: test | tiny | mini | small``; ``small`` is GPT-2's
124M configuration) and a tokenizer (``tokenizer: minilm-l6``, the packaged WordPiece vocabulary, or a local
``vocab.txt``/tokenizer directory); or ``weights:`` a local GPT-2-family Hugging Face directory (GPT-2,
DistilGPT-2...) with its own tokenizer. The language-model head is tied to the input embeddings, so the backbone
alone is a complete language model: the ``clm`` objective trains it and ``polygraft predict`` on that run generates
text.

Every sequence starts with a beginning-of-sequence token and ends with an end-of-sequence token (``[CLS]`` /
``[SEP]`` for WordPiece, ``<|endoftext|>`` for GPT-2's byte-level BPE), so the model learns where texts start and
stop and a classifier can pool on the last token. ``pooling: last`` (default) gives the hidden state of each
sequence's last real token, ``mean`` the masked mean.

Example:
    >>> import polygraft, tempfile, pathlib
    >>> vocab = pathlib.Path(tempfile.mkdtemp()) / "vocab.txt"
    >>> _ = vocab.write_text("\\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "good", "bad"]))
    >>> gpt = polygraft.create_backbone("gpt2", tokenizer=str(vocab), size="test")
    >>> pre = gpt.preprocessor
    >>> gpt(pre.collate([pre({"text": "good"}), pre({"text": "bad bad"})])).pooled.shape
    torch.Size([2, 32])
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from polygraft.errors import ConfigError, WeightsError
from polygraft.features import Features
from polygraft.interfaces.backbone import Backbone
from polygraft_text.backbone import _load_pretrained, _resolve_weights, load_tokenizer, packaged_dir
from polygraft_text.causal import CausalTextPreprocessor, special_ids

SIZES: dict[str, dict[str, int]] = {
    "test": {"n_embd": 32, "n_layer": 2, "n_head": 2},
    "tiny": {"n_embd": 128, "n_layer": 2, "n_head": 2},
    "mini": {"n_embd": 256, "n_layer": 4, "n_head": 4},
    "small": {"n_embd": 768, "n_layer": 12, "n_head": 12},
}
"""GPT2Config size presets: ``small`` is GPT-2 small (124M parameters with its 50k vocabulary)."""
POOLINGS = ("last", "mean")
CONFIG_KEYS = ("n_embd", "n_layer", "n_head", "n_inner", "n_positions", "resid_pdrop", "embd_pdrop", "attn_pdrop",
               "activation_function")


def _blocks(model: nn.Module) -> nn.ModuleList:
    for path in ("transformer.h", "gpt_neox.layers", "model.layers", "model.decoder.layers"):
        target: Any = model
        for part in path.split("."):
            target = getattr(target, part, None)
            if target is None:
                break
        if isinstance(target, nn.ModuleList):
            return target
    raise ConfigError(f"cannot find the transformer blocks of {type(model).__name__}; is it a GPT-2-family model?")


class GPT2Backbone(Backbone):
    """A causal language model's hidden states as token sequences, pooled on the last token (or the mean)."""

    modality = "text"

    def __init__(self, model: nn.Module, tokenizer: Any, *, pooling: str = "last", max_length: int = 128) -> None:
        super().__init__()
        if pooling not in POOLINGS:
            raise ConfigError(f"gpt2 pooling must be one of {POOLINGS}, got {pooling!r}")
        self.model = model
        self.pooling = pooling
        self.feature_dim = int(model.config.hidden_size)
        limit = int(getattr(model.config, "max_position_embeddings", max_length) or max_length)
        self._preprocessor = CausalTextPreprocessor(tokenizer, max_length=min(int(max_length), limit))

    @property
    def preprocessor(self) -> CausalTextPreprocessor:
        return self._preprocessor

    @property
    def lm_head(self) -> nn.Module:
        """The output projection onto the vocabulary (tied to the input embeddings)."""
        return self.model.get_output_embeddings()

    def forward(self, inputs: Mapping[str, Any]) -> Features:
        mask = inputs["attention_mask"]
        sequence = self.model.base_model(input_ids=inputs["input_ids"], attention_mask=mask).last_hidden_state
        features = Features(sequence=sequence, mask=mask.bool())
        if self.pooling == "last":
            last = (mask.sum(dim=1) - 1).clamp_min(0).long()
            features.pooled = sequence[torch.arange(sequence.shape[0], device=sequence.device), last]
        else:
            features.pooled = features.pool()
        return features

    def layer_groups(self) -> list[nn.Module]:
        """Embeddings (token and position) first, then each block; the final norm goes with the last block."""
        blocks = _blocks(self.model)
        base = self.model.base_model
        others = [module for module in base.children() if module is not blocks]
        final = [m for m in others if isinstance(m, nn.LayerNorm) or "norm" in type(m).__name__.lower()]
        first = [m for m in others if all(m is not f for f in final)]
        return [nn.ModuleList(first), *blocks[:-1], nn.ModuleList([blocks[-1], *final])]

    def export_input_axes(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        """ONNX export: every token tensor varies in length (``sequence``)."""
        return {key: {1: "sequence"} for key in ("input_ids", "attention_mask") if key in inputs}

    def export(self, directory: Path) -> dict[str, Any]:
        """Save the HF config and tokenizer into ``directory``; rebuild options point there."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.model.config.save_pretrained(str(directory))
        self.preprocessor.tokenizer.save_pretrained(str(directory))
        return {"config": str(directory), "tokenizer": str(directory), "pooling": self.pooling,
                "max_length": self.preprocessor.max_length}


def _config(size: str | None, config: str | None, tokenizer: Any, max_length: int, values: dict[str, Any]) -> Any:
    from transformers import AutoConfig, GPT2Config

    if size is not None and size not in SIZES:
        raise ConfigError(f"gpt2 size must be one of {sorted(SIZES)}, got {size!r}")
    if config is None:
        preset = SIZES[size or "tiny"]
        return GPT2Config(vocab_size=len(tokenizer), n_positions=max(512, int(max_length)),
                          **special_ids(tokenizer), **{**preset, **values})
    hf_config = AutoConfig.from_pretrained(packaged_dir(config), **values)
    if size is not None:
        differ = {k: (getattr(hf_config, k, None), v) for k, v in SIZES[size].items() if getattr(hf_config, k, v) != v}
        if differ:
            raise ConfigError(f"size={size!r} disagrees with the config in {config} ({differ}: config, preset); "
                              "drop size, or give a config of that size")
    return hf_config


def create_gpt2_backbone(*, weights: str | None = None, config: str | None = None, tokenizer: str | None = None,
                         size: str | None = None, pooling: str = "last", max_length: int = 128,
                         **config_values: Any) -> GPT2Backbone:
    """Factory registered as backbone ``gpt2``.

    Args:
        weights: a local GPT-2-family Hugging Face directory (its tokenizer is used unless ``tokenizer`` is given).
        config: an HF config directory or file for a random-init model of that architecture (a saved run's).
        tokenizer: a local tokenizer directory, a ``vocab.txt`` or a packaged name (``minilm-l6``); needed for a
            random init without ``config``.
        size: a preset (``test``, ``tiny`` (the default), ``mini``, ``small``) for a random init.
        pooling: ``last`` (the last real token's hidden state) or ``mean``.
        max_length: truncation length in tokens, begin/end tokens included (truncated texts are counted).
        **config_values: ``n_embd``, ``n_layer``, ``n_head``, ``n_inner``, ``n_positions``, dropouts...
    """
    from transformers import AutoModelForCausalLM

    unknown = set(config_values) - set(CONFIG_KEYS)
    if unknown:
        raise ConfigError(f"unknown gpt2 options {sorted(unknown)}; config values are {list(CONFIG_KEYS)}")
    if weights is not None:
        if size is not None or config_values or config is not None:
            raise ConfigError("give either weights=... or size/config values for a random init, not both")
        location = _resolve_weights(str(weights))
        tok = load_tokenizer(tokenizer or location)
        try:
            kwargs = {"use_safetensors": True} if (Path(location) / "model.safetensors").is_file() else {}
            model = _load_pretrained(AutoModelForCausalLM, location, **kwargs)
        except WeightsError:
            raise
        except Exception as exc:  # a pickled .bin refused by weights-only loading, a damaged file
            raise WeightsError(f"{location}: cannot load these causal-LM weights ({type(exc).__name__}: {exc}); "
                               "polygraft loads model.safetensors (or weights-only torch files) only") from None
        _blocks(model)
        options: dict[str, Any] = {"weights": str(weights), **({"tokenizer": str(tokenizer)} if tokenizer else {})}
    else:
        if tokenizer is None and config is None:
            raise ConfigError("a random-init gpt2 needs tokenizer=<minilm-l6, a vocab.txt or a tokenizer directory> "
                              "(or weights=<a GPT-2 directory>)")
        tok = load_tokenizer(tokenizer or config)
        hf_config = _config(size, config, tok, max_length, config_values)
        if len(tok) > hf_config.vocab_size:
            raise ConfigError(f"tokenizer has {len(tok)} tokens but the model vocab_size is {hf_config.vocab_size}")
        model = AutoModelForCausalLM.from_config(hf_config)
        options = {"tokenizer": str(tokenizer or config), **({"size": size} if size else {}),
                   **({"config": str(config)} if config else {}), **config_values}
    if tok.pad_token_id is None:  # GPT-2's BPE has none: pad with the end token (padding is masked anyway)
        tok.pad_token = tok.eos_token
    backbone = GPT2Backbone(model, tok, pooling=pooling, max_length=max_length)
    backbone.build_options = {**options, "pooling": pooling, "max_length": max_length}
    return backbone


__all__ = ["SIZES", "GPT2Backbone", "create_gpt2_backbone"]

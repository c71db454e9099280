"""The ``bert`` backbone: any Hugging Face BERT-family encoder (BERT, RoBERTa, DistilBERT, MiniLM...).

Built from ``weights`` (a local Hugging Face directory, a registered alias such as ``minilm-l6``, a hub id tried
only with ``POLYGRAFT_ALLOW_NETWORK=1``) or, for random initialisation, from ``config`` (an HF config directory/file)
or config values (``hidden_size``, ``num_hidden_layers``...) plus a local ``tokenizer``. The Hugging Face model
is kept as ``self.model`` so PEFT/LoRA can wrap its attention modules.

Example:
    >>> import polygraft, tempfile, pathlib
    >>> vocab = pathlib.Path(tempfile.mkdtemp()) / "vocab.txt"
    >>> _ = vocab.write_text("\\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "good", "bad"]))
    >>> bert = polygraft.create_backbone("bert", tokenizer=str(vocab), hidden_size=32, num_hidden_layers=1,
    ...                                  num_attention_heads=2, intermediate_size=64)
    >>> pre = bert.preprocessor
    >>> bert(pre.collate([pre({"text": "good"}), pre({"text": "bad bad"})])).pooled.shape
    torch.Size([2, 32])
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch import nn

from polygraft.assets import network_allowed, network_hint
from polygraft.errors import ConfigError, WeightsError
from polygraft.features import Features
from polygraft.interfaces import AttributionHooks
from polygraft.interfaces.backbone import Backbone
from polygraft_text.preprocessing import TextPreprocessor

logger = logging.getLogger(__name__)

POOLINGS = ("cls", "mean")
CONFIG_KEYS = ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "vocab_size",
               "max_position_embeddings", "hidden_dropout_prob", "attention_probs_dropout_prob", "type_vocab_size",
               "hidden_act")


def load_tokenizer(location: str | Path, *, catalog: Any = None) -> Any:
    """A fast tokenizer from a local directory, a ``vocab.txt`` WordPiece file or a registered weights alias
    (``minilm-l6``: the tokenizer of those weights)."""
    from transformers import AutoTokenizer, BertTokenizerFast

    path = Path(packaged_dir(location, catalog=catalog))
    if path.is_file():
        if path.suffix == ".json":
            from transformers import PreTrainedTokenizerFast

            return PreTrainedTokenizerFast(tokenizer_file=str(path))
        return BertTokenizerFast(vocab=str(path))
    if path.is_dir():
        try:
            return AutoTokenizer.from_pretrained(str(path))
        except (OSError, ValueError) as exc:
            if (path / "vocab.txt").is_file():
                return BertTokenizerFast(vocab=str(path / "vocab.txt"))
            raise WeightsError(f"{path}: no usable tokenizer here ({exc}); give tokenizer=<dir or vocab.txt>") from exc
    if not network_allowed():
        raise WeightsError(f"tokenizer {str(location)!r} is not a local path or a packaged name (minilm-l6); "
                           f"give a local tokenizer directory or vocab.txt. {network_hint()}")
    try:
        return AutoTokenizer.from_pretrained(str(location))
    except (OSError, ValueError) as exc:
        raise WeightsError(f"cannot fetch tokenizer {str(location)!r} from the hub: {exc}") from exc


def packaged_dir(location: str | Path, *, catalog: Any = None) -> str:
    """A registered weights alias of a bert backbone (``minilm-l6``) → its local directory, resolved through the
    catalog like ``weights:`` is; a path or anything else unchanged."""
    import polygraft

    name = str(location)
    if Path(name).exists() or "/" in name or Path(name).suffix:
        return name
    catalog = catalog if catalog is not None else polygraft.build_catalog()
    if name not in catalog.registry("weights"):
        return name
    return polygraft.resolve_weights(name, backbone="bert", catalog=catalog)[0]


def _encoder_layers(model: nn.Module) -> nn.ModuleList:
    for path in ("encoder.layer", "transformer.layer", "encoder.layers", "layers"):
        target: Any = model
        for part in path.split("."):
            target = getattr(target, part, None)
            if target is None:
                break
        if isinstance(target, nn.ModuleList):
            return target
    raise ConfigError(f"cannot find the encoder layers of {type(model).__name__}; is it a BERT-family encoder?")


def _load_pretrained(auto_class: Any, weights: str, **kwargs: Any) -> nn.Module:
    """``from_pretrained`` without transformers' load report for the pooler we drop on purpose.

    Missing weights (parts that would stay randomly initialised) are an error; unexpected ones other than the
    pooler are logged.
    """
    from transformers.utils import logging as hf_logging

    previous, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()  # a 0.1 s load needs no bar
    try:
        model, info = auto_class.from_pretrained(weights, output_loading_info=True, **kwargs)
    finally:
        hf_logging.set_verbosity(previous)
        if bars:
            hf_logging.enable_progress_bar()
    if info.get("missing_keys"):
        raise WeightsError(f"{weights}: these weights are missing from the checkpoint and would stay random: "
                           f"{sorted(info['missing_keys'])[:8]} — is it a checkpoint of this architecture?")
    unexpected = [key for key in info.get("unexpected_keys", []) if not key.startswith("pooler.")]
    if unexpected:
        logger.warning("%s: ignored %d weights the encoder does not use: %s", weights, len(unexpected),
                       sorted(unexpected)[:8])
    return model


def _build_model(config: Any, weights: str | None) -> nn.Module:
    """AutoModel without the unused pooler (for BERT/RoBERTa) from weights or from config (random init)."""
    from transformers import AutoModel

    def make(**kwargs: Any) -> nn.Module:
        if weights is None:
            return AutoModel.from_config(config, **kwargs)
        if (Path(weights) / "model.safetensors").is_file():  # prefer safetensors when both formats are there
            kwargs["use_safetensors"] = True
        return _load_pretrained(AutoModel, weights, **kwargs)

    try:
        return make(add_pooling_layer=False)
    except TypeError:
        return make()


class BertBackbone(Backbone):
    """A BERT-family encoder yielding token sequences and a pooled vector (``cls`` or masked ``mean``)."""

    modality = "text"

    def __init__(self, model: nn.Module, tokenizer: Any, *, pooling: str = "cls", max_length: int = 128) -> None:
        super().__init__()
        if pooling not in POOLINGS:
            raise ConfigError(f"bert pooling must be one of {POOLINGS}, got {pooling!r}")
        self.model = model
        self.pooling = pooling
        self.feature_dim = int(model.config.hidden_size)
        limit = int(getattr(model.config, "max_position_embeddings", max_length) or max_length)
        self._preprocessor = TextPreprocessor(tokenizer, max_length=min(int(max_length), limit))

    @property
    def preprocessor(self) -> TextPreprocessor:
        return self._preprocessor

    @property
    def config(self) -> Any:
        return self.model.config

    def forward(self, inputs: Mapping[str, Any]) -> Features:
        kwargs = {"input_ids": inputs["input_ids"], "attention_mask": inputs["attention_mask"]}
        if "token_type_ids" in inputs and getattr(self.model.config, "type_vocab_size", 0) > 1:
            kwargs["token_type_ids"] = inputs["token_type_ids"]
        sequence = self.model(**kwargs).last_hidden_state
        mask = inputs["attention_mask"].bool()
        features = Features(sequence=sequence, mask=mask)
        features.pooled = sequence[:, 0] if self.pooling == "cls" else Features(sequence=sequence, mask=mask).pool()
        return features

    def attribution_hooks(self) -> AttributionHooks:
        """Token ids, attributed at the word-embedding layer; words are replaced by the padding id."""
        return AttributionHooks(input="input_ids", kind="tokens", embedding=self.model.get_input_embeddings(),
                                baseline=self.preprocessor.pad_token_id)

    def layer_groups(self) -> list[nn.Module]:
        embeddings = getattr(self.model, "embeddings", None) or self.model.get_input_embeddings()
        return [embeddings, *_encoder_layers(self.model)]

    def export_input_axes(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        """ONNX export: every token tensor varies in length (``sequence``)."""
        return {key: {1: "sequence"} for key in ("input_ids", "attention_mask", "token_type_ids") if key in inputs}

    def export(self, directory: Path) -> dict[str, Any]:
        """Save the HF config and tokenizer into ``directory``; rebuild options point there (random init)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.model.config.save_pretrained(str(directory))
        self.preprocessor.tokenizer.save_pretrained(str(directory))
        return {"config": str(directory), "tokenizer": str(directory), "pooling": self.pooling,
                "max_length": self.preprocessor.max_length}


def _resolve_weights(weights: str) -> str:
    path = Path(weights).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise WeightsError(
                f"{path} is not a Hugging Face model directory (no config.json); give a directory saved with "
                "save_pretrained, a polygraft run directory or a registered alias (`polygraft list weights`)"
            )
        return str(path)
    if not network_allowed():
        raise WeightsError(f"weights {weights!r} are not a local path; download the model elsewhere and pass its "
                           f"directory, or use an alias such as minilm-l6. {network_hint()}")
    return weights


def _same_folder(config: str, location: str) -> bool:
    config_path, weights_path = Path(config).expanduser(), Path(location).expanduser()
    folder = config_path.parent if config_path.name == "config.json" else config_path
    return folder.exists() and weights_path.exists() and folder.resolve() == weights_path.resolve()


MAX_POSITIONS = 8192
"""The longest ``max_length`` a random-init model gets without an explicit ``max_position_embeddings``."""


def _check_max_length(max_length: int, config_values: dict[str, Any], *, random_init: bool) -> None:
    """Refuse a length that cannot work before a position table of that size is allocated."""
    if max_length < 2:
        raise ConfigError(f"bert: max_length must be at least 2 tokens ([CLS] and [SEP]), got {max_length}")
    if random_init and "max_position_embeddings" not in config_values and max_length > MAX_POSITIONS:
        hidden = int(config_values.get("hidden_size", 768))
        gigabytes = max_length * hidden * 4 / 2**30
        raise ConfigError(f"bert: max_length={max_length:,} needs a {max_length:,}-position embedding table "
                          f"({gigabytes:,.1f} GB at hidden size {hidden}); BERT-family models use 512. Lower "
                          f"max_length, or set max_position_embeddings explicitly to go beyond {MAX_POSITIONS:,}")


def create_bert_backbone(*, weights: str | None = None, config: str | None = None, tokenizer: str | None = None,
                         pooling: str = "cls", max_length: int = 128, model_type: str = "bert", catalog: Any = None,
                         **config_values: Any) -> BertBackbone:
    """Factory registered as backbone ``bert``.

    Args:
        weights: local HF directory or hub id (aliases and polygraft runs are resolved by core first).
        config: HF config directory or ``config.json`` for a random-init model of that architecture (with
            ``weights``, only the weights' own folder: then ``weights: null`` is a random init of the same model).
        tokenizer: local tokenizer directory or ``vocab.txt``; defaults to the weights/config directory.
        pooling: ``cls`` (first token) or ``mean`` (masked mean of the last layer).
        max_length: truncation length in tokens (truncated examples are counted).
        model_type: architecture for config values (``bert``, ``roberta``, ``distilbert``...).
        catalog: supplied by core (resolves ``config``/``tokenizer`` aliases such as ``minilm-l6``).
        **config_values: ``hidden_size``, ``num_hidden_layers``, ``num_attention_heads``, ``intermediate_size``...
    """
    from transformers import AutoConfig

    unknown = set(config_values) - set(CONFIG_KEYS)
    if unknown:
        raise ConfigError(f"unknown bert options {sorted(unknown)}; config values are {list(CONFIG_KEYS)}")
    _check_max_length(max_length, config_values, random_init=weights is None and config is None)
    if weights is not None:
        location = _resolve_weights(str(weights))
        if config_values or (config is not None and not _same_folder(packaged_dir(config, catalog=catalog), location)):
            raise ConfigError("give either weights=... or config values for a random init, not both (config may "
                              "name the weights' own folder, so that weights=null gives that architecture at random)")
        tok = load_tokenizer(tokenizer or location, catalog=catalog)
        try:
            model = _build_model(None, location)
        except WeightsError:
            raise
        except Exception as exc:  # a pickled .bin refused by weights_only loading, a damaged file, a bad config
            raise WeightsError(
                f"{location}: cannot load these bert weights ({type(exc).__name__}); polygraft loads model.safetensors "
                "(or weights-only torch files) and never unpickles arbitrary objects. Convert the checkpoint to "
                "safetensors, or check that the folder was saved with save_pretrained"
            ) from None
    else:
        if tokenizer is None:
            if config is None:
                raise ConfigError("a random-init bert needs tokenizer=<local dir or vocab.txt> (or weights=...)")
            tokenizer = config
        tok = load_tokenizer(tokenizer, catalog=catalog)
        if config is not None:
            hf_config = AutoConfig.from_pretrained(packaged_dir(config, catalog=catalog), **config_values)
        else:
            values = {"vocab_size": len(tok), "max_position_embeddings": max(512, int(max_length)), **config_values}
            if tok.pad_token_id is not None:
                values["pad_token_id"] = tok.pad_token_id
            hf_config = AutoConfig.for_model(model_type, **values)
        if len(tok) > hf_config.vocab_size:
            raise ConfigError(f"tokenizer has {len(tok)} tokens but the model vocab_size is {hf_config.vocab_size}")
        model = _build_model(hf_config, None)
    backbone = BertBackbone(model, tok, pooling=pooling, max_length=max_length)
    options: dict[str, Any] = {"pooling": pooling, "max_length": max_length}
    if weights is None:
        options.update({"tokenizer": str(tokenizer), "model_type": model_type, **config_values})
        if config is not None:
            options["config"] = str(config)
    else:
        options.update({"weights": str(weights), **({"tokenizer": str(tokenizer)} if tokenizer else {})})
    backbone.build_options = options
    return backbone


__all__ = ["BertBackbone", "create_bert_backbone", "load_tokenizer"]

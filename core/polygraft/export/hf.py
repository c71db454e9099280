"""``--format hf``: a Hugging Face directory that transformers' own classes load (no ``trust_remote_code``).

| polygraft model | transformers class | how the head maps |
|---|---|---|
| ``bert`` (``pooling: cls``) + ``classification`` | ``AutoModelForSequenceClassification`` (BertForSequenceClassification) + ``AutoTokenizer`` | see below |
| ``bert`` + ``token-classification`` | ``AutoModelForTokenClassification`` (BertForTokenClassification) | the linear layer as is |
| ``wav2vec2`` + ``classification`` | ``Wav2Vec2ForSequenceClassification`` (HuBERT's twin for HuBERT) + feature extractor | projector = identity, masked mean, classifier = the linear layer |
| ``wav2vec2`` + ``ctc`` | ``Wav2Vec2ForCTC`` + ``Wav2Vec2Processor`` (CTC tokenizer over the vocabulary, ``|`` for space) | ``lm_head`` = the linear layer |
| ``whisper-encoder`` (``input_mode: padded, pooling: all``) + ``classification`` | ``WhisperForAudioClassification`` + ``WhisperFeatureExtractor`` | projector = identity, mean over the 30-s input, classifier = the linear layer |

BertForSequenceClassification passes the first token through its pooler (dense + tanh) before the classifier, where
polygraft's ``cls`` pooling reads the first token's state as is. The export sets the pooler to ``2^-16 · I`` (bias
0) and the classifier to ``2^16 · W``: tanh is then linear to within float32 rounding (tanh(y) = y(1 - y²/3 + …)
with |y| < 1e-3), so the logits equal polygraft's to 1e-5. Powers of two keep the scaling exact. Other models (mean
pooling, Whisper's trimmed input, spectrograms, detection, fusion) have no native class that computes their logits:
an :class:`~polygraft.errors.ExportError` points to ``--format onnx``.

Every export is loaded back with the Auto class and its preprocessing and compared with polygraft's logits on
sample inputs (max |diff| ≤ 1e-5), so a directory that would not load or not agree is never left behind silently.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from polygraft.errors import ExportError

TOLERANCE = 1e-5
POOLER_SCALE = 2.0 ** -16


def _no_native_class(task: Any, why: str) -> ExportError:
    return ExportError(f"no native transformers class computes this model's outputs ({task.spec_name!r} on "
                       f"{task.backbone.spec_name!r}: {why}); export it with --format onnx (any model), or "
                       "--format timm for timm image classifiers")


def _labels(task: Any) -> dict[str, Any]:
    return {"num_labels": len(task.label_names), "id2label": dict(enumerate(task.label_names)),
            "label2id": {name: index for index, name in enumerate(task.label_names)}}


def _load(module: torch.nn.Module, state: Mapping[str, torch.Tensor], where: str) -> None:
    missing, unexpected = module.load_state_dict(dict(state), strict=False)
    if missing or unexpected:
        raise ExportError(f"{where}: the weights do not map onto transformers' class (missing {missing[:5]}, "
                          f"unexpected {unexpected[:5]}); export with --format onnx")


def _identity(linear: torch.nn.Linear, scale: float = 1.0) -> None:
    with torch.no_grad():
        linear.weight.copy_(torch.eye(linear.weight.shape[0], linear.weight.shape[1]) * scale)
        linear.bias.zero_()


def _copy_linear(target: torch.nn.Linear, source: torch.nn.Linear, scale: float = 1.0) -> None:
    with torch.no_grad():
        target.weight.copy_(source.weight * scale)
        target.bias.copy_(source.bias)


# -- text ------------------------------------------------------------------------------------------------------
def _bert(task: Any, directory: Path) -> tuple[str, Callable[[list[dict[str, Any]]], torch.Tensor]]:
    import transformers
    from transformers import (
        AutoConfig,
        AutoModelForSequenceClassification,
        AutoModelForTokenClassification,
        AutoTokenizer,
    )

    backbone = task.backbone
    config = backbone.model.config
    if config.model_type != "bert":
        raise _no_native_class(task, f"model_type {config.model_type!r}: only BERT's classes are mapped")
    values = {k: v for k, v in config.to_dict().items() if k not in ("model_type", "architectures")}
    hf_config = AutoConfig.for_model("bert", **{**values, **_labels(task)})
    if task.spec_name == "classification":
        if backbone.pooling != "cls":
            raise _no_native_class(task, f"pooling {backbone.pooling!r}: BertForSequenceClassification reads the first "
                                         "token; train with backbone_options {pooling: cls} for an hf export")
        model = AutoModelForSequenceClassification.from_config(hf_config)
        _load(model.bert, {**backbone.model.state_dict(), **{f"pooler.{k}": v for k, v in
                                                               model.bert.pooler.state_dict().items()}}, "bert")
        _identity(model.bert.pooler.dense, POOLER_SCALE)
        _copy_linear(model.classifier, task.head.linear, 1.0 / POOLER_SCALE)
        auto = "AutoModelForSequenceClassification"
    elif task.spec_name == "token-classification":
        model = AutoModelForTokenClassification.from_config(hf_config)
        _load(model.bert, backbone.model.state_dict(), "bert")
        _copy_linear(model.classifier, task.head.linear)
        auto = "AutoModelForTokenClassification"
    else:
        raise _no_native_class(task, "only classification and token-classification map onto BERT classes")
    model.eval().save_pretrained(str(directory))
    tokenizer = backbone.preprocessor.tokenizer
    tokenizer.model_max_length = backbone.preprocessor.max_length
    tokenizer.save_pretrained(str(directory))
    model_class = getattr(transformers, auto)

    def run(examples: list[dict[str, Any]]) -> torch.Tensor:
        loaded = model_class.from_pretrained(str(directory)).eval()
        tok = AutoTokenizer.from_pretrained(str(directory))
        encoded = tok([e["text"] for e in examples], padding=True, truncation=True, return_tensors="pt")
        with torch.no_grad():
            return loaded(**encoded).logits

    return auto, run


# -- speech ----------------------------------------------------------------------------------------------------
def _wav2vec2(task: Any, directory: Path) -> tuple[str, Callable[[list[dict[str, Any]]], torch.Tensor]]:
    import transformers

    backbone = task.backbone
    pre = backbone.preprocessor
    config = backbone.model.config
    prefix = "Hubert" if config.model_type == "hubert" else "Wav2Vec2"
    extractor = transformers.Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=pre.sample_rate, padding_value=0.0,
                                                      do_normalize=pre.normalize,
                                                      return_attention_mask=backbone.uses_attention_mask)
    values = {**config.to_dict(), **_labels(task), "mask_time_prob": 0.0, "mask_feature_prob": 0.0}
    if task.spec_name == "classification":
        hf_config = type(config).from_dict({**values, "classifier_proj_size": config.hidden_size,
                                            "use_weighted_layer_sum": False})
        model = getattr(transformers, f"{prefix}ForSequenceClassification")(hf_config)
        _identity(model.projector)
        _copy_linear(model.classifier, task.head.linear)
        auto, processor = f"{prefix}ForSequenceClassification", extractor
    elif task.spec_name == "ctc":
        labels = list(task.label_names)
        if "|" in labels:
            raise _no_native_class(task, "the vocabulary holds '|', the CTC tokenizer's word delimiter")
        vocab = {("|" if name == " " else name): index for index, name in enumerate(labels)}
        (directory / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False))
        tokenizer = transformers.Wav2Vec2CTCTokenizer(str(directory / "vocab.json"), unk_token="<unk>",
                                                      pad_token="<blank>", word_delimiter_token="|", bos_token=None,
                                                      eos_token=None, do_lower_case=False)
        hf_config = type(config).from_dict({**values, "vocab_size": len(labels), "pad_token_id": 0,
                                            "ctc_loss_reduction": "mean"})
        model = getattr(transformers, f"{prefix}ForCTC")(hf_config)
        _copy_linear(model.lm_head, task.head.linear)
        auto, processor = f"{prefix}ForCTC", transformers.Wav2Vec2Processor(feature_extractor=extractor,  # type: ignore[assignment]
                                                                             tokenizer=tokenizer)
    else:
        raise _no_native_class(task, "only classification and ctc map onto wav2vec2 classes")
    base = getattr(model, config.model_type)  # model.wav2vec2 / model.hubert
    state = backbone.model.state_dict()
    if "masked_spec_embed" not in base.state_dict():  # SpecAugment's training-only embedding, unused at inference
        state.pop("masked_spec_embed", None)
    _load(base, state, config.model_type)
    model.eval().save_pretrained(str(directory))
    processor.save_pretrained(str(directory))
    model_class = getattr(transformers, auto)

    def run(examples: list[dict[str, Any]]) -> torch.Tensor:
        loaded = model_class.from_pretrained(str(directory)).eval()
        extract = transformers.AutoProcessor.from_pretrained(str(directory)) if task.spec_name == "ctc" else \
            transformers.AutoFeatureExtractor.from_pretrained(str(directory))
        waves = [pre.waveform(e).numpy() for e in examples]
        encoded = extract(waves, sampling_rate=pre.sample_rate, padding=True, return_tensors="pt")
        with torch.no_grad():
            logits = loaded(**encoded).logits
        return torch.log_softmax(logits, dim=-1) if task.spec_name == "ctc" else logits

    return auto, run


def _whisper(task: Any, directory: Path) -> tuple[str, Callable[[list[dict[str, Any]]], torch.Tensor]]:
    import transformers

    backbone = task.backbone
    pre = backbone.preprocessor
    if task.spec_name != "classification":
        raise _no_native_class(task, "transformers' Whisper classes with an encoder-only head are for "
                                     "classification (WhisperForAudioClassification)")
    if backbone.input_mode != "padded" or getattr(backbone, "pooling", "clip") != "all":
        raise _no_native_class(task, "WhisperForAudioClassification averages Whisper's whole 30-s padded input, "
                                     f"this model (input_mode={backbone.input_mode!r}, pooling="
                                     f"{getattr(backbone, 'pooling', 'clip')!r}) averages the clip's own frames; "
                                     "train with backbone_options {input_mode: padded, pooling: all} for an hf export")
    encoder_config = backbone.encoder.config
    hf_config = transformers.WhisperConfig(**{**encoder_config.to_dict(), **_labels(task),
                                              "classifier_proj_size": encoder_config.d_model,
                                              "use_weighted_layer_sum": False})
    model = transformers.WhisperForAudioClassification(hf_config)
    _load(model.encoder, backbone.encoder.state_dict(), "whisper encoder")
    _identity(model.projector)
    _copy_linear(model.classifier, task.head.linear)
    model.eval().save_pretrained(str(directory))
    extractor = pre.extractor()
    extractor.save_pretrained(str(directory))

    def run(examples: list[dict[str, Any]]) -> torch.Tensor:
        loaded = transformers.WhisperForAudioClassification.from_pretrained(str(directory)).eval()
        extract = transformers.AutoFeatureExtractor.from_pretrained(str(directory))
        waves = [pre.waveform(e).numpy() for e in examples]
        encoded = extract(waves, sampling_rate=pre.sample_rate, return_tensors="pt")
        with torch.no_grad():
            return loaded(encoded["input_features"]).logits

    return "WhisperForAudioClassification", run


EXPORTERS = {"bert": _bert, "wav2vec2": _wav2vec2, "whisper-encoder": _whisper}


def export_hf(task: Any, directory: Path, examples: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Write the Hugging Face directory, load it back with its Auto class and compare logits with polygraft's."""
    from polygraft.export.onnx_export import outputs_of
    from polygraft.export.samples import collate

    exporter = EXPORTERS.get(task.backbone.spec_name)
    if exporter is None:
        raise _no_native_class(task, f"backbone {task.backbone.spec_name!r} has no transformers counterpart")
    auto, run = exporter(task, directory)
    examples = [dict(example) for example in examples]
    outputs = outputs_of(task, collate(task, examples)["inputs"])
    reference = outputs["log_probs" if task.spec_name == "ctc" else "logits"]
    got = run(examples)  # type: ignore[arg-type]
    if tuple(got.shape) != tuple(reference.shape):
        raise ExportError(f"{directory}: {auto} gives logits of shape {tuple(got.shape)}, polygraft "
                          f"{tuple(reference.shape)}; export with --format onnx")
    valid = _valid_positions(task, outputs, reference)
    diff = float((got - reference).abs()[valid].max())
    if not diff <= TOLERANCE:
        raise ExportError(f"{directory}: {auto}'s logits differ from polygraft's by {diff:.3g} (> {TOLERANCE:g}); "
                          "export with --format onnx")
    checks = [f"transformers.{auto}.from_pretrained(DIR) + its preprocessing on {len(examples)} sample inputs: max "
              f"|logit diff| vs polygraft {diff:.2e} (≤ {TOLERANCE:g})"]
    if auto == "AutoModelForSequenceClassification":
        checks.append("note: polygraft read the first token's state as is; BertForSequenceClassification passes it "
                      "through its pooler (dense + tanh), set here to 2^-16 x identity with the classifier scaled by "
                      "2^16, where tanh is linear to float32 rounding. Fine-tuning this directory further starts "
                      "from that unusual pooler")
    return {"auto_class": auto, "tolerance": TOLERANCE, "max_abs_diff": diff, "checks": checks}


def _valid_positions(task: Any, outputs: Mapping[str, torch.Tensor], reference: torch.Tensor) -> torch.Tensor:
    """Where logits are defined: everything for classification, real frames for CTC (padding frames of a batch
    are left out: neither model promises anything there)."""
    if task.spec_name == "ctc":
        lengths = outputs["lengths"]
        frames = torch.arange(reference.shape[1])[None, :] < lengths[:, None]
        return frames.unsqueeze(-1).expand_as(reference)
    return torch.ones_like(reference, dtype=torch.bool)

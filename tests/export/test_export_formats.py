"""``--format hf`` and ``--format timm``: the directories load with transformers' and timm's own loaders (native
classes, no trust_remote_code) and give polygraft's logits to 1e-5; where no native class fits, the error points
to onnx. Each test loads the export itself, independently of the exporter's own check."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import polygraft
from polygraft.errors import ConfigError, ExportError
from polygraft.export import export_model
from polygraft.export.samples import collate
from polygraft.model_io import save_model

TEXTS = ["the cat sat on the mat", "paris", "the film was not very good and the actors were bad"]


def _export(task, tmp_path: Path, export_format: str = "hf") -> Path:
    return export_model(save_model(task.eval(), tmp_path / "model"), export_format, tmp_path / export_format).directory


def _logits(task, examples):
    with torch.no_grad():
        return task.export_outputs(collate(task, examples)["inputs"])


def test_text_classification_loads_with_auto_classes(tmp_path: Path, tiny_bert: dict) -> None:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    torch.manual_seed(0)
    task = polygraft.create_task("classification", backbone="bert", label_names=["rotten", "fresh"],
                                 backbone_options={**tiny_bert, "pooling": "cls"})
    directory = _export(task, tmp_path)
    model = AutoModelForSequenceClassification.from_pretrained(directory).eval()
    tokenizer = AutoTokenizer.from_pretrained(directory)
    assert type(model).__name__ == "BertForSequenceClassification"
    assert model.config.id2label == {0: "rotten", 1: "fresh"}
    with torch.no_grad():
        logits = model(**tokenizer(TEXTS, padding=True, return_tensors="pt")).logits
    assert torch.allclose(logits, _logits(task, [{"text": t} for t in TEXTS])["logits"], atol=1e-5, rtol=0)
    card = (directory / "README.md").read_text()
    assert "AutoModelForSequenceClassification" in card and "`rotten`, `fresh`" in card


def test_ner_loads_with_auto_token_classification(tmp_path: Path, tiny_bert: dict) -> None:
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    torch.manual_seed(1)
    task = polygraft.create_task("token-classification", backbone="bert", label_names=["O", "B-LOC", "I-LOC"],
                                 backbone_options=tiny_bert)
    directory = _export(task, tmp_path)
    model = AutoModelForTokenClassification.from_pretrained(directory).eval()
    encoded = AutoTokenizer.from_pretrained(directory)(TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        logits = model(**encoded).logits
    assert model.config.id2label[1] == "B-LOC"
    assert torch.allclose(logits, _logits(task, [{"text": t} for t in TEXTS])["logits"], atol=1e-5, rtol=0)


def test_wav2vec2_classification_and_ctc_with_their_processors(tmp_path: Path, make_clip) -> None:
    from transformers import (
        AutoFeatureExtractor,
        AutoProcessor,
        Wav2Vec2ForCTC,
        Wav2Vec2ForSequenceClassification,
    )

    clips = [make_clip(0.6, 300.0), make_clip(0.3, 440.0)]
    waves = [c["audio"] for c in clips]
    torch.manual_seed(2)
    classifier = polygraft.create_task("classification", backbone="wav2vec2", label_names=["yes", "no"],
                                       backbone_options={"size": "tiny"})
    directory = _export(classifier, tmp_path / "cls")
    model = Wav2Vec2ForSequenceClassification.from_pretrained(directory).eval()
    inputs = AutoFeatureExtractor.from_pretrained(directory)(waves, sampling_rate=16000, padding=True,
                                                            return_tensors="pt")
    with torch.no_grad():
        logits = model(**inputs).logits
    assert torch.allclose(logits, _logits(classifier, clips)["logits"], atol=1e-5, rtol=0)

    labels = ["<blank>", "<unk>", " ", "e", "n", "o"]
    recogniser = polygraft.create_task("ctc", backbone="wav2vec2", label_names=labels, backbone_options={"size": "tiny"})
    with torch.no_grad():  # a head that emits characters, so the transcripts have something to compare
        recogniser.head.linear.bias.copy_(torch.tensor([0.0, -9.0, 0.5, 0.8, 0.6, 0.4]))
    directory = _export(recogniser, tmp_path / "ctc")
    model = Wav2Vec2ForCTC.from_pretrained(directory).eval()
    processor = AutoProcessor.from_pretrained(directory)
    inputs = processor(waves, sampling_rate=16000, padding=True, return_tensors="pt")
    with torch.no_grad():
        logits = model(**inputs).logits
    expected = _logits(recogniser, clips)
    frames = int(expected["lengths"].min())
    assert torch.allclose(torch.log_softmax(logits, -1)[:, :frames], expected["log_probs"][:, :frames], atol=1e-5)
    ids = [row[:length] for row, length in zip(logits.argmax(-1), expected["lengths"].tolist())]
    transcripts = [" ".join(t.split()) for t in processor.batch_decode(ids)]
    want = [p["transcript"] for p in recogniser.predict(collate(recogniser, clips))]
    assert transcripts == want and any(want)


def test_whisper_encoder_as_whisper_for_audio_classification(tmp_path: Path, make_clip) -> None:
    from transformers import AutoFeatureExtractor, WhisperForAudioClassification

    options = {"preset": "test", "input_mode": "padded", "pooling": "all", "max_source_positions": 50}
    torch.manual_seed(3)
    task = polygraft.create_task("classification", backbone="whisper-encoder", label_names=["a", "b", "c"],
                                 backbone_options=options)
    directory = _export(task, tmp_path)
    clips = [make_clip(0.4, 300.0), make_clip(0.9, 600.0)]
    model = WhisperForAudioClassification.from_pretrained(directory).eval()
    features = AutoFeatureExtractor.from_pretrained(directory)([c["audio"] for c in clips], sampling_rate=16000,
                                                               return_tensors="pt")["input_features"]
    with torch.no_grad():
        logits = model(features).logits
    assert torch.allclose(logits, _logits(task, clips)["logits"], atol=1e-5, rtol=0)
    trimmed = polygraft.create_task("classification", backbone="whisper-encoder", label_names=["a", "b"],
                                    backbone_options={"preset": "test"})
    with pytest.raises(ExportError, match=r"input_mode: padded, pooling: all.*--format onnx"):
        _export(trimmed, tmp_path / "trimmed")
    with pytest.raises(ConfigError, match="needs input_mode: padded"):
        polygraft.create_backbone("whisper-encoder", preset="test", pooling="all")


def test_timm_local_dir_loads_with_timm(tmp_path: Path) -> None:
    import timm
    from PIL import Image

    torch.manual_seed(4)
    task = polygraft.create_task("classification", backbone="timm", label_names=["cat", "dog", "fox"],
                                 backbone_options={"model_name": "test_efficientnet", "image_size": 48,
                                                   "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]})
    directory = _export(task, tmp_path, "timm")
    config = json.loads((directory / "config.json").read_text())
    assert config["architecture"] == "test_efficientnet" and config["num_classes"] == 3
    assert config["label_names"] == ["cat", "dog", "fox"]
    assert config["pretrained_cfg"]["input_size"] == [3, 48, 48] and config["pretrained_cfg"]["std"] == [0.25] * 3
    model = timm.create_model(f"local-dir:{directory}", pretrained=True).eval()
    transform = timm.data.create_transform(**timm.data.resolve_data_config(model=model))
    images = [Image.effect_noise((64, 56), 50).convert("RGB"), Image.new("RGB", (30, 40), "orange")]
    with torch.no_grad():
        logits = model(torch.stack([transform(image) for image in images]))
    assert torch.allclose(logits, _logits(task, [{"image": i} for i in images])["logits"], atol=1e-5, rtol=0)


def test_no_native_class_points_to_onnx(tmp_path: Path, tiny_bert: dict) -> None:
    mean = polygraft.create_task("classification", backbone="bert", label_names=["a", "b"],
                                 backbone_options={**tiny_bert, "pooling": "mean"})
    with pytest.raises(ExportError, match=r"pooling 'mean'.*--format onnx"):
        _export(mean, tmp_path / "mean")
    detector = polygraft.create_task("detection", backbone="timm", label_names=["a"], backbone_options={
        "model_name": "test_resnet", "features": "maps", "image_size": 64})
    with pytest.raises(ExportError, match="--format onnx"):
        _export(detector, tmp_path / "det")
    with pytest.raises(ExportError, match="--format onnx"):
        _export(detector, tmp_path / "det-timm", "timm")
    spectrogram = polygraft.create_task("classification", backbone="spectrogram", label_names=["a", "b"],
                                        backbone_options={"model_name": "test_resnet", "n_mels": 32})
    with pytest.raises(ExportError, match=r"no native transformers class.*'spectrogram'.*--format onnx"):
        _export(spectrogram, tmp_path / "spec")

"""Fusion over real plugin backbones (tiny random-init timm ResNet, 1-layer BERT, spectrogram) on a manifest of
files the test writes: the input cache keeps the deterministic branches' prepared inputs (an augmented branch is
prepared per batch), two branches' truncation counters keep apart, a run predicts from the command line with a
field left out; and a third party's backbone (the example tabular plugin) works as a branch with no core change."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
from PIL import Image

import polygraft
from polygraft.cli import main as cli

ROOT = Path(__file__).resolve().parents[1]
WORDS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "red", "blue", "square", "circle", "loud", "quiet"]


def write_data(folder: Path) -> Path:
    (folder / "vocab.txt").write_text("\n".join(WORDS))
    (folder / "media").mkdir()
    rows = ["photo,caption,clip,label"]
    for i in range(12):
        colour = (220, 30, 30) if i % 2 else (30, 30, 220)
        Image.new("RGB", (32, 32), colour).save(folder / "media" / f"{i}.png")
        tone = np.sin(np.arange(4000 + 4000 * (i % 3)) * (0.05 if i % 2 else 0.2)).astype(np.float32)
        soundfile.write(str(folder / "media" / f"{i}.wav"), tone * 0.5, 16000)
        caption = "a red square " * (6 if i % 4 == 1 else 1) if i % 2 else "a blue circle"
        photo = "" if i % 5 == 4 else f"media/{i}.png"
        rows.append(f"{photo},{caption.strip()},media/{i}.wav,{'red' if i % 2 else 'blue'}")
    (folder / "data.csv").write_text("\n".join(rows) + "\n")
    return folder / "data.csv"


def branches(folder: Path) -> dict:
    return {
        "image": {"backbone": "timm", "fields": ["photo"],
                  "backbone_options": {"model_name": "test_resnet", "image_size": 32, "crop_pct": 1.0}},
        "text": {"backbone": "bert", "fields": ["caption"],
                 "backbone_options": {"tokenizer": str(folder / "vocab.txt"), "hidden_size": 16, "max_length": 8,
                                      "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 32}},
        "audio": {"backbone": "spectrogram", "fields": ["clip"],
                  "backbone_options": {"model_name": "test_resnet", "n_mels": 32, "max_seconds": 0.4}},
    }


def test_fusion_of_plugin_backbones_trains_caches_counts_and_predicts(tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    table = write_data(tmp_path)
    columns = {"photo": "image", "caption": "text", "clip": "audio"}
    data = polygraft.load_dataset("multimodal-manifest", path=str(table), columns=columns)
    task = polygraft.create_task("classification", backbone="fusion", label_names=data.label_names,
                                 backbone_options={"branches": branches(tmp_path), "fusion": "transformer",
                                                   "hidden": 16, "heads": 2, "tokens": "sequence"},
                                 augment={"image": True})
    train = task.data_pipeline(training=True)
    prepared = train.prepare(data[1])["inputs"]
    assert isinstance(prepared["image"]["photo"], Image.Image)  # augmented: prepared per batch, in collate
    assert torch.is_tensor(prepared["audio"]["pixel_values"]) and "input_ids" in prepared["text"]
    assert train.deterministic() is True and train.fingerprint() is not None
    config = polygraft.TrainerConfig(max_steps=6, batch_size=4, progress=False, num_workers=0)  # two epochs
    run = tmp_path / "run"
    trainer = polygraft.Trainer(config, output_dir=run)
    trainer.fit(task, train_data=data, val_data=data)
    assert any(line.startswith("train: 12 prepared examples kept in memory")
               for line in (split.describe() for split in trainer.loaders.cache.splits))
    results = json.loads((run / "results.json").read_text())
    assert results["train/text_truncated_examples"] == 3 and results["train/audio_truncated_examples"] == 8
    assert results["val/text_truncated_examples"] == 3.0
    assert {"text/TruncationCounter", "audio/TruncationCounter"} <= set(
        torch.load(run / "checkpoints" / "last.pt", weights_only=True)["callbacks"])
    capsys.readouterr()
    assert cli(["predict", str(run), "--field", f"clip={tmp_path / 'media' / '3.wav'}", "--field",
                "caption=a red square", "--json"]) == 0
    [prediction] = json.loads(capsys.readouterr().out)
    assert prediction["input"] == {"clip": str(tmp_path / "media" / "3.wav"), "caption": "a red square"}
    assert prediction["label"] in {"red", "blue"}


@pytest.fixture
def tabular_catalog(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.syspath_prepend(str(ROOT / "examples" / "plugins" / "polygraft-tabular"))
    from polygraft_tabular import plugin

    yield polygraft.build_catalog(autoload=False, plugins=[("tabular", plugin, "polygraft-tabular")])
    for name in [m for m in sys.modules if m.startswith("polygraft_tabular")]:
        monkeypatch.delitem(sys.modules, name)


def test_a_third_party_backbone_is_a_branch_with_no_core_change(tmp_path: Path, tabular_catalog) -> None:
    rng = np.random.default_rng(0)
    rows = [{"reading": [float(v) for v in rng.normal(100 + 10 * (i % 2), 1.0, size=3)], "x": [float(i % 2), 1.0],
             "label": str(i % 2)} for i in range(24)]
    from polygraft.interfaces import ListSource

    data = ListSource(rows, label_names=["0", "1"])
    task = polygraft.create_task("classification", backbone="fusion", label_names=["0", "1"], catalog=tabular_catalog,
                                 backbone_options={"branches": {
                                     "table": {"backbone": "mlp", "backbone_options": {"in_features": 3, "hidden": 8},
                                               "fields": ["reading"]},
                                     "toy": {"backbone": "toy", "backbone_options": {"in_features": 2}, "fields": ["x"]}},
                                     "hidden": 8})
    config = polygraft.TrainerConfig(max_steps=4, batch_size=8, progress=False)
    polygraft.Trainer(config, output_dir=tmp_path).fit(task, train_data=data, val_data=data)
    fitted = task.backbone.branches["table"].preprocessor.mean
    assert fitted is not None and 100 < fitted[0] < 110  # the plugin's standardiser was fitted on the branch's field
    loaded = polygraft.load(tmp_path, catalog=tabular_catalog)
    assert loaded.backbone.branches["table"].preprocessor.mean == fitted
    assert loaded.predict_examples([{"reading": rows[0]["reading"]}]) == task.eval().predict_examples(
        [{"reading": rows[0]["reading"]}])

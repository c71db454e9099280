"""The trainer's input cache with real audio files: speech preprocessors declare when they are deterministic, audio
sources fingerprint their files, plain training keeps the prepared clips, and noise augmentation keeps the decoded
clips while adding new noise every epoch."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

import polygraft
from polygraft.interfaces import Callback
from polygraft_speech.mel import WhisperMelPreprocessor
from polygraft_speech.preprocess import WaveformPreprocessor


@pytest.fixture(autouse=True)
def cache_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("POLYGRAFT_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def folder(tmp_path: Path, write_clip) -> Path:
    for label, frequency in (("low", 220.0), ("high", 880.0)):
        for i in range(4):
            write_clip(tmp_path / "clips" / label / f"{i}.wav", seconds=0.2 + 0.05 * i, frequency=frequency + 10 * i)
    return tmp_path / "clips"


def test_speech_preprocessors_say_when_they_are_deterministic() -> None:
    assert WaveformPreprocessor().deterministic and not WaveformPreprocessor().for_training().deterministic
    assert WhisperMelPreprocessor().deterministic
    assert not WhisperMelPreprocessor(augment={"freq_masks": 1, "freq_width": 4, "time_masks": 1, "time_width": 4,
                                               "max_time_fraction": 0.2}).deterministic


def test_audio_folder_fingerprint_follows_files(catalog, folder: Path, write_clip) -> None:
    def fingerprint() -> str:
        return polygraft.load_dataset("audio-folder", catalog=catalog, path=str(folder)).fingerprint()

    source = polygraft.load_dataset("audio-folder", catalog=catalog, path=str(folder))
    assert source.storage == "files"
    before = fingerprint()
    assert before == fingerprint()
    target = folder / "high" / "2.wav"
    write_clip(target, seconds=0.6, frequency=500.0)
    os.utime(target, ns=(0, target.stat().st_mtime_ns + 1_000_000_000))
    assert fingerprint() != before


class Waves(Callback):
    def __init__(self) -> None:
        self.by_epoch: list[dict[int, torch.Tensor]] = []

    def on_train_epoch_start(self, trainer, epoch) -> None:
        self.by_epoch.append({})

    def on_train_batch_end(self, trainer, batch, output) -> None:
        inputs = batch["inputs"]
        for row, index in enumerate(batch["meta"]["index"].tolist()):
            length = int(inputs["attention_mask"][row].sum())  # padding depends on the batch's other clips
            self.by_epoch[-1][index] = inputs["input_values"][row, :length].clone()


def fit(catalog, source, **task_options) -> tuple[polygraft.Trainer, Waves]:
    torch.manual_seed(0)
    task = polygraft.create_task("classification", backbone="wav2vec2", catalog=catalog, label_names=["high", "low"],
                                 backbone_options={"size": "tiny"}, **task_options)
    waves = Waves()
    trainer = polygraft.Trainer(polygraft.TrainerConfig(max_epochs=2, batch_size=4, progress=False), callbacks=[waves])
    trainer.fit(task, train_data=source, val_data=source)
    return trainer, waves


def test_plain_training_keeps_prepared_clips_and_noise_keeps_decoded_clips(catalog, folder: Path) -> None:
    source = polygraft.load_dataset("audio-folder", catalog=catalog, path=str(folder))
    trainer, waves = fit(catalog, source)
    assert [(s.split, s.kind, s.count) for s in trainer.loaders.cache.splits] == [("train", "memory", 8),
                                                                                   ("val", "memory", 8)]
    first, second = waves.by_epoch
    assert all(torch.equal(first[i], second[i]) for i in range(8))  # the same prepared clips every epoch

    trainer, waves = fit(catalog, source, augment=True)
    train, val = trainer.loaders.cache.splits
    assert train.kind == "decoded" and train.count == 8 and "random" in train.note
    assert val.kind == "memory"
    first, second = waves.by_epoch
    assert sorted(first) == sorted(second) == list(range(8))
    assert sum(not torch.equal(first[i], second[i]) for i in range(8)) == 8  # new noise every epoch

"""Audio inputs that used to hang, crash or be called corrupt (reliability audit rows E3, G6, G9, H5)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

import polygraft
from polygraft.errors import DataError
from polygraft_speech.preprocess import WaveformPreprocessor


def test_e3_wav2vec2_cuts_long_clips_at_30_s_by_default_and_counts_them() -> None:
    backbone = polygraft.create_backbone("wav2vec2", size="tiny")
    pre = backbone.preprocessor
    item = pre({"audio": np.zeros(16000 * 40, np.float32), "sample_rate": 16000})
    assert item["input_values"].shape[0] == 16000 * 30 and item["truncated"]
    assert pre.collate_meta([item])["truncated"].tolist() == [True]
    assert [type(c).__name__ for c in pre.callbacks()] == ["TruncationCounter"]
    whole = polygraft.create_backbone("wav2vec2", size="tiny", max_seconds=None).preprocessor
    assert whole.callbacks() == [] and not whole({"audio": np.zeros(800, np.float32), "sample_rate": 16000})["truncated"]


def test_h5_predict_reads_a_long_file_only_up_to_the_models_limit(tmp_path: Path, write_clip, monkeypatch) -> None:
    clip = write_clip(tmp_path / "long.wav", seconds=12.0, rate=8000)
    pre = WaveformPreprocessor(max_seconds=2.0)
    example = pre.read_input(str(clip))
    assert example["audio"].shape[0] == 2 * 8000 + 1  # one sample past the limit: the cut is seen and counted
    spectrogram_reader = polygraft.create_backbone("spectrogram", model_name="test_resnet", n_mels=16,
                                                   max_seconds=1.0).preprocessor
    assert spectrogram_reader.read_input(str(clip))["audio"].shape[0] == 8000 + 1

    import soundfile

    def out_of_memory(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr(soundfile, "read", out_of_memory)
    with pytest.raises(DataError, match=r"long.wav: clip lasts 12 s \(96,000 frames\): too long to decode at once"):
        WaveformPreprocessor().read_input(str(clip))


def test_g6_a_fifo_in_a_manifest_is_refused_at_once(tmp_path: Path, write_clip, catalog) -> None:
    write_clip(tmp_path / "good.wav")
    os.mkfifo(tmp_path / "clip.wav")
    (tmp_path / "m.csv").write_text("path,label\ngood.wav,a\nclip.wav,b\n")
    with pytest.raises(DataError, match=r"clip.wav: not a regular file \(a FIFO\)"):
        polygraft.load_dataset("audio-manifest", catalog=catalog, path=str(tmp_path / "m.csv"))
    skipped = polygraft.load_dataset("audio-manifest", catalog=catalog, path=str(tmp_path / "m.csv"),
                                     skip_invalid=True)
    assert len(skipped) == 1 and skipped.skip_report()["total"] == 1


def test_g9_a_manifest_with_a_header_and_no_rows_says_so(tmp_path: Path, catalog) -> None:
    (tmp_path / "m.csv").write_text("path,label\n")
    with pytest.raises(DataError, match=r"m.csv: manifest has a header but no rows"):
        polygraft.load_dataset("audio-manifest", catalog=catalog, path=str(tmp_path / "m.csv"))


def test_a_run_saved_before_the_30_s_default_loads_as_it_was_trained(tmp_path) -> None:
    """Runs of 0.1.0 saved wav2vec2 without ``max_seconds`` (then: no limit); the default is 30 s now. The saved
    preprocessing description says what the run used, and loading keeps it instead of refusing the run."""
    import json

    from polygraft.model_io import save_model

    task = polygraft.create_task("classification", backbone="wav2vec2", label_names=["a", "b"],
                                 backbone_options={"size": "tiny", "max_seconds": None})
    save_model(task, tmp_path / "run" / "model")
    config_file = tmp_path / "run" / "model" / "polygraft.json"
    config = json.loads(config_file.read_text())
    config["backbone"]["options"].pop("max_seconds")  # as 0.1.0 wrote it
    assert "max_seconds" not in config["preprocessing"]  # described only when set
    config_file.write_text(json.dumps(config))
    loaded = polygraft.load(tmp_path / "run")
    assert loaded.backbone.preprocessor.max_seconds is None

    config["preprocessing"]["sample_rate"] = 8000  # a setting the options cannot explain is still refused
    config_file.write_text(json.dumps(config))
    with pytest.raises(polygraft.errors.WeightsError, match="sample_rate"):
        polygraft.load(tmp_path / "run")

"""polygraft's conformance kit on every component of polygraft-speech (tiny random models, clips made here)."""

from __future__ import annotations

from pathlib import Path

from polygraft.testing import check_plugin


def test_every_speech_component_conforms(tmp_path: Path, write_clip, tiny_digits: dict) -> None:
    for label, frequency in (("yes", 300.0), ("no", 500.0)):
        for index in range(2):
            write_clip(tmp_path / "clips" / label / f"{index}.wav", seconds=0.5, frequency=frequency)
    (tmp_path / "manifest.csv").write_text("path,label\nclips/yes/0.wav,yes\nclips/no/0.wav,no\nclips/yes/1.wav,yes\n")
    digits = {**tiny_digits, "cache_dir": str(tmp_path / "cache")}
    import polygraft_vision.plugin as vision  # the spectrogram's image backbone comes from the vision plugin

    report = check_plugin("polygraft_speech.plugin", with_plugins=[("vision", vision)], options={
        "backbone:wav2vec2": {"size": "tiny"},
        "whisper-encoder": [{"preset": "test", "input_mode": "trimmed"}, {"preset": "test", "input_mode": "padded"}],
        "spectrogram": {"model_name": "test_resnet", "n_mels": 32, "image_size": 32},
        "audio-folder": {"path": str(tmp_path / "clips")},
        "audio-manifest": {"path": str(tmp_path / "manifest.csv")},
        "spoken-digits": digits,
        "spoken-digit-strings": {**digits, "clips_per_voice": 3},
        "spoken-speakers": digits,
    }, pairs={"objective:wav2vec2": "wav2vec2"})
    checked = {result.component.split(" {")[0] for result in report.results}
    assert {"backbone 'wav2vec2'", "backbone 'spectrogram'", "dataset 'spoken-digits'", "dataset 'spoken-speakers'",
            "weights 'whisper-tiny-en'"} <= checked
    assert any(c.startswith("objective 'wav2vec2' on backbone 'wav2vec2'") for c in checked)

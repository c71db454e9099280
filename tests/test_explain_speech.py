"""Audio explanations: a tiny Whisper encoder trained on tone bursts, where the burst decides the class.

Each clip is quiet noise with one 120 ms tone, low (500 Hz) or high (2.5 kHz), at a random time, or none (a third
class, so that each tone is evidence the model needs): an explanation of a tone's class must peak at the burst (a
pointing game in time) and deleting its top time-frequency cells must hurt more than deleting random ones. wav2vec2 (waveform frames), the spectrogram CNN (Grad-CAM applies) and CTC
(one map per emitted character) run on tiny random-init models.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch

import polygraft
from polygraft.errors import DataError, IncompatibleComponentsError
from polygraft.explain import explain, render
from polygraft.explain.checks import deletion, randomised_copy, rank_correlation

RATE = 16_000


def bursts(count: int, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    clips = []
    for index in range(count):
        label = ("low", "high", "none")[index % 3]
        wave = rng.normal(0.0, 0.01, RATE).astype(np.float32)
        start = int(rng.integers(1_000, RATE - 3_000))
        length = int(0.12 * RATE)
        t = np.arange(length) / RATE
        if label != "none":
            wave[start:start + length] += 0.5 * np.sin(2 * np.pi * (500 if label == "low" else 2_500) * t)
        clips.append({"audio": wave, "sample_rate": RATE, "label": label,
                      "span": (start, start + length) if label != "none" else None})
    return clips


def train(task, examples, *, steps: int, lr: float):  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    pipeline = task.data_pipeline(training=False)
    prepared = [pipeline.prepare(example) for example in examples]
    optimizer = torch.optim.AdamW(task.parameters(), lr=lr)
    rng = random.Random(0)
    task.train()
    for _ in range(steps):
        loss = task(pipeline.collate(rng.sample(prepared, 16))).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return task.eval()


@pytest.fixture(scope="module")
def burst_model():  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    task = polygraft.create_task("classification", backbone="whisper-encoder", label_names=["high", "low", "none"],
                                 backbone_options={"preset": "test"})
    return train(task, bursts(180, seed=0), steps=60, lr=3e-3)


def test_the_map_peaks_at_the_tone_and_deletion_hurts(burst_model) -> None:  # type: ignore[no-untyped-def]
    hits, drops_top, drops_random, correct = [], [], [], []
    for index, clip in enumerate(c for c in bursts(24, seed=1) if c["span"]):
        result = explain(burst_model, clip, method="integrated-gradients")
        attribution = result.attributions[0]
        correct.append(attribution.label == clip["label"])
        assert attribution.completeness["within_tolerance"]
        assert attribution.scores.shape == (80, 100)  # mel bins x 10 ms frames
        peak_frame = int(np.argmax(np.abs(attribution.scores).sum(0)))
        start, end = (value // 160 for value in clip["span"])
        hits.append(start - 1 <= peak_frame <= end + 1)
        drop = deletion(result, fraction=0.2, seed=index)
        drops_top.append(drop["drop_top"])
        drops_random.append(drop["drop_random"])
    assert np.mean(correct) >= 0.9
    assert np.mean(hits) >= 0.9, f"peak inside the tone in {np.mean(hits):.0%} of clips"
    assert np.mean(drops_top) > np.mean(drops_random) + 0.1


def test_randomised_whisper_gives_other_maps(burst_model) -> None:  # type: ignore[no-untyped-def]
    randomised = randomised_copy(burst_model, seed=1)
    correlations = []
    for clip in [c for c in bursts(12, seed=2) if c["span"]]:
        trained = explain(burst_model, clip, method="ig").attributions[0]
        other = explain(randomised, clip, method="ig", target=trained.label).attributions[0]
        correlations.append(rank_correlation(trained.scores, other.scores))
    assert np.mean(correlations) < 0.3


def test_wav2vec2_frames_and_the_spectrogram_picture(tmp_path: Path) -> None:
    import soundfile

    clip = bursts(1, seed=3)[0]
    soundfile.write(tmp_path / "clip.wav", clip["audio"], RATE)
    task = polygraft.create_task("classification", backbone="wav2vec2", label_names=["high", "low"],
                                 backbone_options={"size": "tiny"}).eval()
    result = explain(task, str(tmp_path / "clip.wav"))
    attribution = result.attributions[0]
    assert result.method == "integrated-gradients" and result.kind == "waveform"
    assert attribution.scores.shape == (RATE // 320,) and attribution.completeness["within_tolerance"]
    files = render(result, tmp_path / "out")
    assert Path(files[0]).name == "clip-integrated-gradients.png" and Path(files[0]).stat().st_size > 5_000
    occluded = explain(task, str(tmp_path / "clip.wav"), method="occlusion").attributions[0]
    assert occluded.scores.shape == (RATE // 320,)
    missing = str(tmp_path / "missing.wav")
    with pytest.raises(DataError) as predicted:
        task.backbone.preprocessor.read_input(missing)  # what `polygraft predict` calls first
    with pytest.raises(DataError) as explained:
        explain(task, missing)
    assert str(explained.value) == str(predicted.value) and "missing.wav" in str(explained.value)


def test_gradcam_applies_to_the_spectrogram_cnn_not_to_whisper(burst_model) -> None:  # type: ignore[no-untyped-def]
    clip = bursts(1, seed=4)[0]
    cnn = polygraft.create_task("classification", backbone="spectrogram", label_names=["high", "low"],
                                backbone_options={"model_name": "test_resnet", "n_mels": 32}).eval()
    cam = explain(cnn, clip, method="gradcam").attributions[0].scores
    assert cam.shape == (32, 101)
    with pytest.raises(IncompatibleComponentsError, match=r"Methods that do: integrated-gradients, occlusion$"):
        explain(burst_model, clip, method="gradcam")


def test_ctc_explains_every_emitted_character() -> None:
    torch.manual_seed(0)
    task = polygraft.create_task("ctc", backbone="whisper-encoder", label_names=["<blank>", "<unk>", " ", "a", "b"],
                                 backbone_options={"preset": "test"}).eval()
    clip = bursts(1, seed=5)[0]
    result = explain(task, clip, method="ig")
    transcript = result.prediction["transcript"]
    assert "".join(a.label for a in result.attributions).split() == transcript.split()
    frames = [a.info["frame"] for a in result.attributions]
    assert frames == sorted(frames)
    assert all(a.scores.shape == (80, 100) and a.completeness["within_tolerance"] for a in result.attributions)
    only = explain(task, clip, method="ig", target="a").attributions
    assert [a.label for a in only] == ["a"] * transcript.count("a")

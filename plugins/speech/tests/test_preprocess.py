"""The waveform preprocessor: resampling, HF-identical normalisation, padding + mask, noise, cheap lengths."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

import polygraft
from polygraft.errors import ConfigError, DataError
from polygraft_speech.preprocess import WaveformPreprocessor


def test_collate_pads_to_longest_with_mask(tone):
    pre = WaveformPreprocessor(normalize=False)
    items = [pre({"audio": tone(0.5, 16000), "sample_rate": 16000}),
             pre({"audio": tone(0.25, 8000, channels=2), "sample_rate": 8000}),
             pre({"audio": torch.from_numpy(tone(1.0, 48000)), "sample_rate": 48000})]
    batch = pre.collate(items)
    assert batch["input_values"].shape == (3, 16000) and batch["input_values"].dtype == torch.float32
    assert batch["attention_mask"].dtype == torch.long
    assert batch["attention_mask"].sum(1).tolist() == [8000, 4000, 16000]
    assert torch.equal(batch["input_values"][1, 4000:], torch.zeros(12000))  # padding is zeros
    assert float(batch["input_values"][1, :4000].abs().max()) == pytest.approx(0.375, rel=0.03)  # stereo mean


def test_normalisation_matches_hugging_face(tone):
    from transformers import Wav2Vec2FeatureExtractor

    rng = np.random.default_rng(0)
    clips = [(0.3 * rng.standard_normal(12000) + 0.1).astype(np.float32), tone(0.5, 16000) * 0.2]
    pre = WaveformPreprocessor()
    ours = pre.collate([pre({"audio": clip, "sample_rate": 16000}) for clip in clips])
    hf = Wav2Vec2FeatureExtractor(do_normalize=True, return_attention_mask=True)(
        clips, sampling_rate=16000, padding=True, return_tensors="pt")
    assert torch.equal(ours["attention_mask"], hf["attention_mask"].long())
    assert torch.allclose(ours["input_values"], hf["input_values"], atol=1e-5)
    real = ours["input_values"][0]
    assert float(real.mean()) == pytest.approx(0, abs=1e-5) and float(real.std()) == pytest.approx(1, abs=1e-3)


def test_paths_are_decoded_and_resampled(tmp_path, write_clip):
    path = write_clip(tmp_path / "x.wav", seconds=0.5, rate=44100, channels=2)
    pre = WaveformPreprocessor(sample_rate=8000)
    assert pre({"audio": str(path)})["input_values"].shape == (4000,)
    example = pre.read_input(str(path))
    assert example["sample_rate"] == 44100 and example["audio"].ndim == 1 and example["_origin"] == str(path)
    assert pre(example)["input_values"].shape == (4000,)
    (tmp_path / "bad.wav").write_text("no")
    with pytest.raises(DataError, match=r"bad\.wav: holds text"):
        pre.read_input(str(tmp_path / "bad.wav"))


@pytest.mark.parametrize(("example", "message"), [
    ({"text": "hi"}, "no 'audio' key"),
    ({"audio": np.zeros(10, np.float32)}, "needs its 'sample_rate'"),
    ({"audio": np.zeros(10, np.int16), "sample_rate": 16000}, "must hold floats"),
    ({"audio": np.array([0.0, np.inf], np.float32), "sample_rate": 16000}, "NaN or infinite"),
    ({"audio": np.zeros((0,), np.float32), "sample_rate": 16000}, "non-empty"),
])
def test_bad_examples(example, message):
    with pytest.raises(DataError, match=message):
        WaveformPreprocessor()({**example, "_origin": "list.csv:4"})


def test_training_noise_is_opt_in_and_at_the_asked_snr(tone):
    clean = WaveformPreprocessor(normalize=False)
    example = {"audio": tone(1.0, 16000), "sample_rate": 16000}
    assert torch.equal(clean(example)["input_values"], clean(example)["input_values"])
    noisy = pickle.loads(pickle.dumps(clean.for_training(snr_db=(20.0, 20.0))))
    assert noisy.noise and not clean.noise and noisy.describe()["snr_db"] == [20.0, 20.0]
    torch.manual_seed(0)
    first, second = noisy(example)["input_values"], noisy(example)["input_values"]
    assert not torch.equal(first, second)
    signal = clean(example)["input_values"]
    snr = 10 * torch.log10(signal.pow(2).mean() / (first - signal).pow(2).mean())
    assert float(snr) == pytest.approx(20.0, abs=0.5)
    never = clean.for_training(noise_prob=0.0)
    assert torch.equal(never(example)["input_values"], signal)
    with pytest.raises(ConfigError, match="snr_db"):
        clean.for_training(snr_db=(30, 10))


def test_pickle_and_describe():
    pre = WaveformPreprocessor(sample_rate=22050, normalize=False)
    copy = pickle.loads(pickle.dumps(pre))
    assert copy.describe() == {"type": "waveform", "sample_rate": 22050, "normalize": False}


def test_lengths_come_from_headers_without_decoding(catalog, tmp_path, write_clip, monkeypatch):
    write_clip(tmp_path / "a" / "one.wav", seconds=0.5, rate=8000)
    write_clip(tmp_path / "a" / "two.wav", seconds=1.25, rate=48000, channels=2)
    source = polygraft.load_dataset("audio-folder", catalog=catalog, path=str(tmp_path))
    pre = WaveformPreprocessor()

    def no_decoding(*args, **kwargs):
        raise AssertionError("lengths() must not decode clips")

    monkeypatch.setattr("polygraft_speech.preprocess.load_mono", no_decoding)
    monkeypatch.setattr("polygraft_speech.datasets.source.load_mono", no_decoding)
    monkeypatch.setattr("soundfile.read", no_decoding)
    assert source.lengths() == [500, 1250]  # the source knows its durations (ms) from the headers
    subset = source.split([1, 1], seed=3)[0]
    assert subset.lengths() == [[500, 1250][i] for i in subset.indices]  # core's subset view maps them
    examples = [{"audio": np.zeros(4000, np.float32), "sample_rate": 8000},
                {"audio": str(tmp_path / "a" / "one.wav")}]
    assert pre.lengths(examples) == [8000, 8000]  # arrays by size, paths by header

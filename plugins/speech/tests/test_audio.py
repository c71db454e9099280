"""Audio reading: every bad file is a DataError naming it; stereo and odd rates come out mono at the target
rate."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile
import torch

from polygraft.errors import DataError
from polygraft_speech.audio import load_audio, load_mono, probe_audio, read_audio, to_mono_at_rate


def _header_only(path):
    """A WAV header whose data chunk claims samples that are not there."""
    soundfile.write(str(path), np.zeros(1000, dtype=np.float32), 16000, subtype="PCM_16")
    path.write_bytes(path.read_bytes()[:44])


BAD_FILES = {
    "missing.wav": (lambda p: None, "does not exist"),
    "folder.wav": (lambda p: p.mkdir(), "is a folder"),
    "empty.wav": (lambda p: p.write_bytes(b""), r"empty \(0 bytes\)"),
    "notes.wav": (lambda p: p.write_text("speaker,transcript\nA,hello there\n"), "holds text, not audio"),
    "header_only.wav": (_header_only, "holds no samples"),
    "zero_length.wav": (lambda p: soundfile.write(str(p), np.zeros((0, 1), np.float32), 16000),
                        "holds no samples"),
    "garbage.wav": (lambda p: p.write_bytes(bytes(range(256)) * 4), "not an audio file soundfile can decode"),
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
@pytest.mark.parametrize("reader", [probe_audio, read_audio, load_mono])
def test_bad_files_name_the_file(tmp_path, name, reader):
    make, message = BAD_FILES[name]
    path = tmp_path / name
    make(path)
    with pytest.raises(DataError, match=message) as caught:
        reader(path)
    assert caught.value.path == str(path) and str(caught.value).startswith(str(path))


def test_non_finite_samples_fail_at_decode(tmp_path):
    path = tmp_path / "nan.wav"
    samples = np.zeros(800, dtype=np.float32)
    samples[10] = np.nan
    soundfile.write(str(path), samples, 8000, subtype="FLOAT")
    assert probe_audio(path).frames == 800  # the header is fine
    with pytest.raises(DataError, match=r"nan\.wav: .*NaN"):
        load_mono(path)


@pytest.mark.parametrize(("rate", "channels"), [(8000, 1), (48000, 1), (16000, 2), (44100, 2), (22050, 6)])
def test_load_audio_is_mono_at_target_rate(tmp_path, write_clip, rate, channels):
    path = write_clip(tmp_path / f"{rate}-{channels}.flac", seconds=0.5, rate=rate, channels=channels)
    info = probe_audio(path)
    assert (info.frames, info.sample_rate, info.channels) == (rate // 2, rate, channels)
    assert info.duration == pytest.approx(0.5)
    wave = load_audio(path, 16000)
    assert wave.dim() == 1 and wave.dtype == torch.float32 and wave.shape[0] == 8000
    # the mix is the channel mean (levels 1/c ... c/c of the tone), the 440 Hz tone survives resampling
    expected_peak = 0.5 * np.mean([(c + 1) / channels for c in range(channels)])
    assert float(wave.abs().max()) == pytest.approx(expected_peak, rel=0.03)
    spectrum = torch.fft.rfft(wave).abs()
    assert int(spectrum.argmax()) * 16000 / wave.shape[0] == pytest.approx(440, abs=3)


def test_load_mono_crops_and_keeps_rate(tmp_path, write_clip):
    path = write_clip(tmp_path / "a.wav", seconds=1.0, rate=8000, channels=2)
    mono, rate = load_mono(path, max_frames=2000)
    assert rate == 8000 and mono.shape == (2000,) and mono.dtype == np.float32
    samples, _ = read_audio(path)
    assert samples.shape == (8000, 2) and np.allclose(mono, samples[:2000].mean(axis=1))


def test_to_mono_at_rate_accepts_1d_and_2d(tone):
    assert to_mono_at_rate(tone(0.25, 48000), 48000, 16000).shape == (4000,)
    stereo = tone(0.25, 16000, channels=2)
    assert torch.allclose(to_mono_at_rate(stereo, 16000, 16000), torch.from_numpy(stereo.mean(axis=1)))

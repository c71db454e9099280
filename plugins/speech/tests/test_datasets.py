"""Speech datasets: folders and manifests (bad rows and files named, long clips counted), espeak-ng digits
(speaker-disjoint splits, verified voices, an atomic reusable cache)."""

from __future__ import annotations

import json

import numpy as np
import pytest

import polygraft
from polygraft.errors import AssetError, ConfigError, DataError
from polygraft_speech import synth
from polygraft_speech.datasets.spoken import DIGITS, split_voices


def make_folder(root, write_clip, *, split=None):
    base = root / split if split else root
    write_clip(base / "yes" / "a.wav", seconds=0.3)
    write_clip(base / "yes" / "b.flac", seconds=0.4, rate=8000, channels=2)
    write_clip(base / "no" / "c.wav", seconds=0.5, rate=48000)
    (base / "no" / "readme.txt").write_text("not audio")
    return root


def test_audio_folder_reads_classes(catalog, tmp_path, write_clip):
    root = make_folder(tmp_path, write_clip)
    source = polygraft.load_dataset("audio-folder", catalog=catalog, path=str(root))
    assert source.label_names == ["no", "yes"] and len(source) == 3
    assert source.skipped["file without an audio extension"] == 1  # counted, never silent
    assert source.durations() == pytest.approx([0.5, 0.3, 0.4])
    example = source[2]
    assert example["label"] == "yes" and example["sample_rate"] == 8000
    assert example["audio"].shape == (3200,) and example["audio"].dtype == np.float32  # stereo mixed to mono
    assert example["_origin"].endswith("b.flac")


def test_audio_folder_split_folders(catalog, tmp_path, write_clip):
    make_folder(tmp_path, write_clip, split="train")
    write_clip(tmp_path / "validation" / "maybe" / "d.wav")
    train = polygraft.load_dataset("audio-folder", catalog=catalog, path=str(tmp_path), split="train")
    val = polygraft.load_dataset("audio-folder", catalog=catalog, path=str(tmp_path), split="val")
    assert len(train) == 3 and len(val) == 1 and val[0]["label"] == "maybe"
    assert train.label_names == val.label_names == ["maybe", "no", "yes"]  # label names agree across splits
    with pytest.raises(DataError, match="no 'test' split here"):
        polygraft.load_dataset("audio-folder", catalog=catalog, path=str(tmp_path), split="test")
    assert len(polygraft.load_dataset("audio-folder", catalog=catalog, path=str(tmp_path), split="all")) == 4


def test_audio_folder_without_split_folders_refuses_val(catalog, tmp_path, write_clip):
    make_folder(tmp_path, write_clip)
    with pytest.raises(DataError, match="split 'val' needs a sub-folder"):
        polygraft.load_dataset("audio-folder", catalog=catalog, path=str(tmp_path), split="val")
    with pytest.raises(ConfigError, match="split must be one of"):
        polygraft.load_dataset("audio-folder", catalog=catalog, path=str(tmp_path), split="dev")


def test_audio_folder_bad_files(catalog, tmp_path, write_clip):
    root = make_folder(tmp_path, write_clip)
    (root / "yes" / "empty.wav").write_bytes(b"")
    (root / "no" / "words.wav").write_text("this is a transcript, not audio")
    with pytest.raises(DataError, match=r"words\.wav: holds text, not audio; pass skip_invalid=true"):
        polygraft.load_dataset("audio-folder", catalog=catalog, path=str(root))  # class "no" comes first
    source = polygraft.load_dataset("audio-folder", catalog=catalog, path=str(root), skip_invalid=True)
    assert len(source) == 3 and source.skipped["unreadable audio file"] == 2
    assert any(place.endswith("words.wav") for place in source.skipped_at["unreadable audio file"])


def test_clip_broken_after_open_names_file_at_decode(catalog, tmp_path, write_clip):
    root = make_folder(tmp_path, write_clip)
    source = polygraft.load_dataset("audio-folder", catalog=catalog, path=str(root))
    (root / "no" / "c.wav").write_bytes(b"")  # damaged after the header check
    with pytest.raises(DataError, match=r"c\.wav: audio file is empty"):
        source[0]


@pytest.mark.parametrize("layout", ["csv", "jsonl", "tsv"])
def test_manifest_reads_relative_paths(catalog, tmp_path, write_clip, layout):
    write_clip(tmp_path / "clips" / "a.wav", seconds=0.25)
    write_clip(tmp_path / "clips" / "b.wav", seconds=0.5, rate=8000)
    rows = [{"path": "clips/a.wav", "transcript": "three one"}, {"path": "clips/b.wav", "transcript": "nine"}]
    if layout == "jsonl":
        text = "".join(json.dumps(row) + "\n" for row in rows)
    else:
        sep = "," if layout == "csv" else "\t"
        text = f"path{sep}transcript\n" + "".join(f"{r['path']}{sep}{r['transcript']}\n" for r in rows)
    manifest = tmp_path / f"list.{layout}"
    manifest.write_text(text)
    source = polygraft.load_dataset("audio-manifest", catalog=catalog, path=str(manifest))
    assert source.label_names is None and [source[i]["transcript"] for i in range(2)] == ["three one", "nine"]
    assert source.durations() == pytest.approx([0.25, 0.5])
    assert source[1]["_origin"] == f"{manifest}:{3 if layout != 'jsonl' else 2}"


def test_manifest_labels_and_split_column(catalog, tmp_path, write_clip):
    for name in "abc":
        write_clip(tmp_path / f"{name}.wav")
    (tmp_path / "m.csv").write_text("file,class,split\na.wav,dog,train\nb.wav,cat,val\nc.wav,dog,train\n")
    train = polygraft.load_dataset("audio-manifest", catalog=catalog, path=str(tmp_path / "m.csv"), split="train",
                                   audio_column="file", label_column="class")
    assert len(train) == 2 and train.label_names == ["dog"] and train[0]["label"] == "dog"
    everything = polygraft.load_dataset("audio-manifest", catalog=catalog, path=str(tmp_path / "m.csv"),
                                        audio_column="file", label_column="class")
    assert len(everything) == 3 and everything.label_names == ["cat", "dog"]


@pytest.mark.parametrize(("text", "message"), [
    ("path,label\na.wav,yes\nmissing.wav,no\n",
     r"missing\.wav: audio file does not exist \(listed at .*m\.csv:3\)"),
    ("path,label\na.wav,yes\n,no\n", r"m\.csv:3: empty or missing \['path'\]"),
    ("path,label\na.wav,\n", r"m\.csv:2: empty or missing \['label'\]"),
    ("file,label\na.wav,yes\n", r"m\.csv:1: column 'path' is missing"),
    ("path,speaker\na.wav,bob\n", r"m\.csv:1: needs a 'label' or 'transcript' column"),
    ("", r"m\.csv: manifest is empty"),
    ("path,label\nnotes.wav,yes\n", r"notes\.wav: holds text, not audio \(listed at .*m\.csv:2\)"),
])
def test_manifest_row_errors(catalog, tmp_path, write_clip, text, message):
    write_clip(tmp_path / "a.wav")
    (tmp_path / "notes.wav").write_text("hello")
    (tmp_path / "m.csv").write_text(text)
    with pytest.raises(DataError, match=message):
        polygraft.load_dataset("audio-manifest", catalog=catalog, path=str(tmp_path / "m.csv"))


def test_manifest_jsonl_errors_and_skips(catalog, tmp_path, write_clip):
    write_clip(tmp_path / "a.wav")
    manifest = tmp_path / "m.jsonl"
    manifest.write_text('{"path": "a.wav", "label": "yes"}\n{"path": "a.wav", "label": \n')
    with pytest.raises(DataError, match=r"m\.jsonl:2: invalid JSON"):
        polygraft.load_dataset("audio-manifest", catalog=catalog, path=str(manifest))
    manifest.write_text('{"path": "a.wav", "label": "yes"}\n{"path": "gone.wav", "label": "no"}\n'
                        '{"path": "a.wav"}\n')
    source = polygraft.load_dataset("audio-manifest", catalog=catalog, path=str(manifest), skip_invalid=True)
    assert len(source) == 1
    report = source.skip_report()
    assert report["total"] == 2
    assert report["reasons"]["unreadable audio file"]["first"] == [f"{manifest}:2"]
    assert report["reasons"]["empty or missing value in a manifest row"]["first"] == [f"{manifest}:3"]


def test_max_duration_crop_is_counted(catalog, tmp_path, write_clip):
    write_clip(tmp_path / "long.wav", seconds=2.0, rate=8000)
    write_clip(tmp_path / "short.wav", seconds=0.5)
    (tmp_path / "m.csv").write_text("path,label\nlong.wav,a\nshort.wav,b\n")
    source = polygraft.load_dataset("audio-manifest", catalog=catalog, path=str(tmp_path / "m.csv"),
                                    max_duration=1.5)
    assert source.changed["cropped to max_duration (1.5 s)"] == 1
    changed = source.skip_report()["changed"]
    assert changed["cropped to max_duration (1.5 s)"]["first"] == [f"{tmp_path / 'm.csv'}:2"]
    assert source.durations() == pytest.approx([1.5, 0.5])
    assert source[0]["audio"].shape == (12000,) and source[1]["audio"].shape == (8000,)


def test_max_duration_refuse_raises_or_skips(catalog, tmp_path, write_clip):
    root = tmp_path / "data"
    write_clip(root / "a" / "long.wav", seconds=3.0)
    write_clip(root / "a" / "short.wav", seconds=0.5)
    with pytest.raises(DataError, match=r"long\.wav: clip lasts 3\.00 s, longer than max_duration=2 s"):
        polygraft.load_dataset("audio-folder", catalog=catalog, path=str(root), max_duration=2, on_long="refuse")
    source = polygraft.load_dataset("audio-folder", catalog=catalog, path=str(root), max_duration=2,
                                    on_long="refuse", skip_invalid=True)
    assert len(source) == 1 and source.skipped["longer than max_duration (2 s)"] == 1
    with pytest.raises(ConfigError, match="on_long must be one of"):
        polygraft.load_dataset("audio-folder", catalog=catalog, path=str(root), max_duration=2, on_long="trim")


def test_split_voices_is_deterministic_and_disjoint():
    voices = [f"v{i}" for i in range(10)]
    first = split_voices(voices, val_voices=2, test_voices=3, seed=7)
    assert first == split_voices(voices, val_voices=2, test_voices=3, seed=7)
    assert first != split_voices(voices, val_voices=2, test_voices=3, seed=8)
    assert (len(first["train"]), len(first["val"]), len(first["test"])) == (5, 2, 3)
    assert sorted(first["train"] + first["val"] + first["test"]) == sorted(voices)
    with pytest.raises(ConfigError, match="keep one for training"):
        split_voices(voices[:3], val_voices=2, test_voices=1, seed=0)


def test_spoken_digits_speaker_disjoint(tiny_digits, catalog, digits_cache):
    parts = {split: polygraft.load_dataset("spoken-digits", catalog=catalog, split=split,
                                           cache_dir=str(digits_cache), **tiny_digits)
             for split in ("train", "val", "test")}
    assert {split: len(source) for split, source in parts.items()} == {"train": 20, "val": 10, "test": 10}
    voices = {split: {record.extra["voice"] for record in source.records} for split, source in parts.items()}
    assert voices["train"].isdisjoint(voices["val"]) and voices["train"].isdisjoint(voices["test"])
    assert voices["val"].isdisjoint(voices["test"])
    assert set().union(*voices.values()) == set(tiny_digits["voices"])
    assert voices == {split: set(source.voices) for split, source in parts.items()}
    train = parts["train"]
    assert train.label_names == list(DIGITS)
    assert sorted(train[i]["label"] for i in range(len(train))) == sorted(DIGITS * 2)
    example = train[0]
    assert example["sample_rate"] == 16000 and example["audio"].ndim == 1
    assert 0.15 < example["audio"].shape[0] / 16000 < 1.2  # silence trimmed: one word, not a padded second
    assert np.abs(example["audio"][:160]).max() < np.abs(example["audio"]).max()  # starts near the word
    info = json.loads((train.folder / "info.json").read_text())
    assert info["voices"]["val"] == parts["val"].voices and info["clips"] == {"train": 20, "val": 10, "test": 10}


def test_spoken_digits_cache_is_reused_and_keyed_by_options(tiny_digits, catalog, digits_cache, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the cache should have been reused")

    first = polygraft.load_dataset("spoken-digits", catalog=catalog, cache_dir=str(digits_cache), **tiny_digits)
    monkeypatch.setattr(synth.subprocess, "run", refuse)  # no espeak-ng call at all on the second open
    again = polygraft.load_dataset("spoken-digits", catalog=catalog, cache_dir=str(digits_cache), **tiny_digits)
    assert again.folder == first.folder and len(again) == len(first)
    monkeypatch.undo()
    other = polygraft.load_dataset("spoken-digits", catalog=catalog, cache_dir=str(digits_cache),
                                   **{**tiny_digits, "voices": ["en-us", "en+f3", "en-029"]})
    assert other.folder != first.folder and other.folder.parent == first.folder.parent


def test_half_written_cache_is_not_trusted(tiny_digits, catalog, tmp_path):
    options = {**tiny_digits, "voices": ["en-us", "en+f3", "en+m3"], "cache_dir": str(tmp_path)}
    source = polygraft.load_dataset("spoken-digits", catalog=catalog, **options)
    (source.folder / "info.json").unlink()  # as if the process died before finishing
    (source.folder / "manifest.jsonl").write_text('{"path": "clips/x.wav"')
    rebuilt = polygraft.load_dataset("spoken-digits", catalog=catalog, **options)
    assert (rebuilt.folder / "info.json").is_file() and len(rebuilt) == 10
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]  # no temporary folder left behind


def test_cache_dir_from_environment(tiny_digits, catalog, tmp_path, monkeypatch):
    monkeypatch.setenv("POLYGRAFT_CACHE", str(tmp_path))
    source = polygraft.load_dataset("spoken-digits", catalog=catalog, split="test",
                                    **{**tiny_digits, "voices": ["en-us", "en+f3", "en+m3"]})
    assert source.folder.parent == tmp_path / "spoken-digits" and len(source) == 10


def test_unknown_and_duplicate_voices_are_dropped(catalog, tmp_path):
    voices = ["en-us", "en-us+nosuchvariant", "en+f3", "en+m3", "en+m3x", "xx-nope"]
    source = polygraft.load_dataset("spoken-digits", catalog=catalog, split="all", cache_dir=str(tmp_path),
                                    voices=voices, speeds=[170], pitches=[50], val_voices=1, test_voices=1)
    dropped = source.info["dropped_voices"]
    assert "does not know the variant" in dropped["en-us+nosuchvariant"]
    assert "does not know the variant" in dropped["en+m3x"]
    assert "cannot speak with voice 'xx-nope'" in dropped["xx-nope"]
    assert sorted(source.voices) == ["en+f3", "en+m3", "en-us"] and len(source) == 30


def test_near_duplicate_voice_is_dropped_by_clip_hash(catalog, tmp_path):
    # en-us-nyc says most digits exactly like en-us: held-out voices must not repeat training clips
    source = polygraft.load_dataset("spoken-digits", catalog=catalog, split="all", cache_dir=str(tmp_path),
                                    voices=["en-us", "en-us-nyc", "en+f3"], speeds=[170], pitches=[50],
                                    val_voices=1, test_voices=0)
    (dropped,) = source.info["dropped_voices"]
    assert dropped in ("en-us", "en-us-nyc") and "byte-identical" in source.info["dropped_voices"][dropped]
    assert len(source) == 20


def test_missing_espeak_says_how_to_install(tiny_digits, catalog, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(AssetError, match="apt-get install espeak-ng"):
        polygraft.load_dataset("spoken-digits", catalog=catalog, cache_dir=str(tmp_path / "cache"), **tiny_digits)


def test_spoken_digit_strings(tiny_digits, catalog, tmp_path):
    options = {**tiny_digits, "voices": ["en-us", "en+f3", "en+m3"], "clips_per_voice": 6,
               "cache_dir": str(tmp_path)}
    train = polygraft.load_dataset("spoken-digit-strings", catalog=catalog, split="train", **options)
    test = polygraft.load_dataset("spoken-digit-strings", catalog=catalog, split="test", **options)
    assert len(train) == len(test) == 6 and train.label_names is None and set(train.voices).isdisjoint(test.voices)
    transcripts = [train[i]["transcript"] for i in range(len(train))]
    assert all(2 <= len(t.split()) <= 5 and set(t.split()) <= set(DIGITS) for t in transcripts)
    assert len(set(transcripts)) > 3
    durations = train.durations()
    longest = max(range(6), key=lambda i: len(transcripts[i].split()))
    shortest = min(range(6), key=lambda i: len(transcripts[i].split()))
    assert durations[longest] > durations[shortest]  # more digits, longer clip
    with pytest.raises(ConfigError, match="min_digits"):
        polygraft.load_dataset("spoken-digit-strings", catalog=catalog, **{**options, "min_digits": 0})


def test_spoken_digits_bad_options(tiny_digits, catalog, tmp_path):
    with pytest.raises(ConfigError, match="split must be one of"):
        polygraft.load_dataset("spoken-digits", catalog=catalog, split="dev", cache_dir=str(tmp_path),
                               **tiny_digits)
    with pytest.raises(ConfigError, match="pitches are between 0 and 99"):
        polygraft.load_dataset("spoken-digits", catalog=catalog, cache_dir=str(tmp_path),
                               **{**tiny_digits, "pitches": [120]})


def test_default_voices_are_distinct_and_the_documented_split_holds():
    from polygraft_speech.datasets import spoken

    kept, dropped = synth.verify_voices(synth.espeak_binary(), synth.DEFAULT_VOICES)
    assert dropped == {} and kept == list(synth.DEFAULT_VOICES) and len(kept) == 28
    assignment = split_voices(kept, val_voices=4, test_voices=4, seed=0)
    for split in ("val", "test"):
        line = next(line for line in spoken.__doc__.splitlines() if line.startswith(f"- {split}:"))
        assert [v.strip("`, ") for v in line.split(":", 1)[1].split(",")] == assignment[split]


def test_too_few_usable_voices(catalog, tmp_path):
    with pytest.raises(ConfigError, match="only 1 voices are usable"):
        polygraft.load_dataset("spoken-digits", catalog=catalog, cache_dir=str(tmp_path), speeds=[170],
                               pitches=[50], voices=["en-us", "xx-nope", "en-us+nosuch"], val_voices=1,
                               test_voices=1)


def test_spoken_speakers_label_clips_by_voice_with_unseen_voices_held_out(tiny_digits, catalog, digits_cache):
    parts = {split: polygraft.load_dataset("spoken-speakers", catalog=catalog, split=split,
                                           cache_dir=str(digits_cache), **tiny_digits)
             for split in ("train", "val", "test")}
    digits = {split: polygraft.load_dataset("spoken-digits", catalog=catalog, split=split,
                                            cache_dir=str(digits_cache), **tiny_digits) for split in parts}
    for split, source in parts.items():  # the same clips as spoken-digits, relabelled by their voice
        assert source.label_names == sorted(digits[split].voices)
        assert [source[i]["label"] for i in range(len(source))] == \
            [record.extra["voice"] for record in digits[split].records]
        assert [source[i]["digit"] for i in range(len(source))] == [digits[split][i]["label"]
                                                                    for i in range(len(source))]
    assert set(parts["train"].label_names).isdisjoint(parts["val"].label_names + parts["test"].label_names)

"""Preprocess once: prepared examples kept in memory or on disk, checked against their key, never unpickled;
the same batches with and without the cache; augmentation still random; resume and DDP unchanged."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

import polygraft
from polygraft.builtin.toy import VectorPreprocessor
from polygraft.errors import ConfigError, DataError
from polygraft.inputs.cache.disk import DiskCache
from polygraft.inputs.cache.plan import InputCache
from polygraft.interfaces import Callback, DataPipeline, DataSource, ListSource
from polygraft.training.config import TrainerConfig
from polygraft.training.schedule import StepPlan

SCRIPT = Path(__file__).parent / "scripts" / "train_cached.py"
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}


@pytest.fixture(autouse=True)
def cache_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Disk caches of these tests go to a temporary folder, never ~/.cache."""
    root = tmp_path / "cache"
    monkeypatch.setenv("POLYGRAFT_CACHE", str(root))
    return root


class CountingSource(DataSource):
    """Vectors with labels; counts every read. ``storage`` and ``fingerprint`` as a file-backed source's."""

    storage = "files"

    def __init__(self, size: int = 24, *, version: str = "v1") -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(0)
        self.rows = [(torch.randn(4, generator=generator).tolist(), f"c{i % 3}") for i in range(size)]
        self.label_names, self.name, self.version, self.reads = ["c0", "c1", "c2"], "counting", version, 0

    def __len__(self) -> int:
        return len(self.rows)

    def _example(self, index: int) -> dict[str, Any]:
        self.reads += 1
        x, label = self.rows[index]
        return {"x": x, "label": label}

    def fingerprint(self) -> str:
        return f"{self.version}:{len(self.rows)}"


class Scaled(VectorPreprocessor):
    """A deterministic preprocessor with one option (``scale``); counts its calls."""

    deterministic = True

    def __init__(self, in_features: int = 4, scale: float = 1.0) -> None:
        super().__init__(in_features)
        self.scale, self.calls = scale, 0

    def __call__(self, example: Mapping[str, Any]) -> dict[str, Any]:
        self.calls += 1
        return {"x": super().__call__(example)["x"] * self.scale, "note": ("kept", 1, None, 0.5)}

    def describe(self) -> dict[str, Any]:
        return {"type": "scaled", "scale": self.scale}


class Noisy(Scaled):
    """An augmenting preprocessor: random noise on every call."""

    deterministic = False

    def __call__(self, example: Mapping[str, Any]) -> dict[str, Any]:
        item = super().__call__(example)
        return {**item, "x": item["x"] + torch.randn(item["x"].shape)}


class Pipe(DataPipeline):
    random_prepare = False

    def __init__(self, preprocessor: VectorPreprocessor) -> None:
        self.preprocessor = preprocessor

    def prepare(self, example: Mapping[str, Any]) -> dict[str, Any]:
        return {"inputs": self.preprocessor(example), "label": ["c0", "c1", "c2"].index(example["label"])}

    def collate(self, items: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        return {"inputs": {"x": torch.stack([i["inputs"]["x"] for i in items])},
                "labels": torch.tensor([i["label"] for i in items])}


def keep(source: DataSource, pipeline: DataPipeline, mode: str = "auto", **options: Any):
    return InputCache(mode, **options).prepare(source, pipeline, split="train", training=True, passes=3)


def everything(split) -> list[Any]:
    return [split.dataset[i][1] for i in range(len(split.source))]


# --------------------------------------------------------------------------------------------- memory
def test_deterministic_preparation_runs_once_and_gives_the_same_examples() -> None:
    source, pre = CountingSource(), Scaled()
    split = keep(source, Pipe(pre))
    assert split.kind == "memory" and split.count == 24 and split.nbytes > 24 * 16
    reads_after_setup = source.reads
    first, second = everything(split), everything(split)
    assert source.reads == reads_after_setup  # later epochs read nothing
    uncached = [Pipe(Scaled()).prepare(source[i]) for i in range(24)]
    for a, b, c in zip(first, second, uncached):
        assert torch.equal(a["inputs"]["x"], c["inputs"]["x"]) and a["label"] == c["label"] and a is b


def test_undeclared_pipeline_is_kept_for_evaluation_but_trains_uncached_unless_it_equals_evaluation() -> None:
    class Undeclared(Pipe):
        random_prepare = None

    source = CountingSource()
    evaluation = InputCache("auto").prepare(source, Undeclared(Scaled()), split="val", training=False, passes=2)
    assert evaluation.kind == "memory"
    same = InputCache("auto").prepare(source, Undeclared(Scaled()), split="train", training=True, passes=2,
                                      reference=Undeclared(Scaled()))
    assert same.kind == "memory"  # training preparation is evaluation's: as deterministic
    other = InputCache("auto").prepare(source, Undeclared(Scaled()), split="train", training=True, passes=2,
                                       reference=Undeclared(Scaled(scale=2.0)))
    assert other.kind == "decoded" and "does not declare deterministic" in other.note
    class Unknown(VectorPreprocessor):
        deterministic = None  # a third-party preprocessor that declares nothing

    unknown = Unknown(4)
    assert InputCache("auto").prepare(source, Undeclared(unknown), split="train", training=True, passes=2,
                                      reference=Undeclared(unknown)).kind == "decoded"


def test_examples_computed_in_workers_equal_those_computed_in_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(InputCache, "_parallel", lambda self, each_s, count: 2)
    in_workers = keep(CountingSource(), Pipe(Scaled()))
    assert in_workers.kind == "memory" and in_workers.workers == 2
    for a, b in zip(everything(in_workers), [Pipe(Scaled()).prepare(CountingSource()[i]) for i in range(24)]):
        assert torch.equal(a["inputs"]["x"], b["inputs"]["x"]) and a["inputs"]["x"].dtype == b["inputs"]["x"].dtype
        assert a["inputs"]["note"] == b["inputs"]["note"] and a["label"] == b["label"]
    broken = CountingSource()
    broken.rows[20] = ([1.0], "c0")
    with pytest.raises(DataError, match="expected 4 features"):  # raised from a worker as itself
        keep(broken, Pipe(Scaled()))


def test_off_single_read_and_data_errors() -> None:
    assert keep(CountingSource(), Pipe(Scaled()), mode="off").kind == "none"
    once = InputCache("auto").prepare(CountingSource(), Pipe(Scaled()), split="test", training=False, passes=1)
    assert once.kind == "none" and once.note == "read once"
    broken = CountingSource()
    broken.rows[5] = ([1.0], "c0")  # 1 feature instead of 4
    with pytest.raises(DataError, match="expected 4 features"):
        keep(broken, Pipe(Scaled()))  # raised while preparing, before any training step
    with pytest.raises(ConfigError, match=r"trainer\.cache must be one of"):
        TrainerConfig(cache="sometimes")
    assert TrainerConfig(cache=False).cache is False and TrainerConfig(num_workers=None).num_workers is None


def test_augmented_training_keeps_decoded_examples_and_stays_random() -> None:
    source = CountingSource()
    split = keep(source, Pipe(Noisy()))
    assert split.kind == "decoded" and "random" in split.note
    reads = source.reads
    epoch1, epoch2 = everything(split), everything(split)
    assert source.reads == reads  # decoded once
    for a, b in zip(epoch1, epoch2):
        assert not torch.equal(a["inputs"]["x"], b["inputs"]["x"])  # new noise every epoch
    in_memory = ListSource([source[i] for i in range(24)], label_names=source.label_names)
    assert keep(in_memory, Pipe(Noisy())).kind == "none"  # nothing worth keeping: already in memory


# --------------------------------------------------------------------------------------------- disk
def test_disk_cache_hit_miss_and_invalidation(cache_root: Path) -> None:
    source, pre = CountingSource(), Scaled()
    written = keep(source, Pipe(pre), mode="disk")
    assert written.kind == "disk" and not written.reused and written.path.parent == cache_root / "prepared"
    assert written.describe().startswith(f"train: 24 prepared examples cached on disk at {written.path} (0.0 MB")
    calls = pre.calls
    again_pre = Scaled()
    hit = keep(source, Pipe(again_pre), mode="disk")
    assert hit.kind == "disk" and hit.reused and hit.path == written.path and again_pre.calls == 0
    assert hit.describe().endswith("MB, reused)")
    assert pre.calls == calls
    for a, b in zip(everything(written), everything(hit)):
        assert torch.equal(a["inputs"]["x"], b["inputs"]["x"]) and a == {**b, "inputs": a["inputs"]}
    assert everything(hit)[0]["inputs"]["note"] == ("kept", 1, None, 0.5)  # tuples, None, floats survive
    changed_option = keep(source, Pipe(Scaled(scale=2.0)), mode="disk")
    assert not changed_option.reused and changed_option.path != written.path
    assert torch.equal(everything(changed_option)[3]["inputs"]["x"], everything(hit)[3]["inputs"]["x"] * 2)
    changed_file = keep(CountingSource(version="v2"), Pipe(Scaled()), mode="disk")
    assert not changed_file.reused and changed_file.path not in (written.path, changed_option.path)
    assert not list((cache_root / "prepared").glob(".*tmp*"))  # no temporary folders left behind


def test_a_cache_whose_key_or_files_do_not_match_is_not_trusted() -> None:
    source = CountingSource()
    written = keep(source, Pipe(Scaled()), mode="disk")
    manifest_path = written.path / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["key"]["source"] = "something else"
    manifest_path.write_text(json.dumps(manifest))
    assert not keep(source, Pipe(Scaled()), mode="disk").reused  # rewritten, not trusted
    shard = next(written.path.glob("*.safetensors"))
    shard.write_bytes(shard.read_bytes()[:-10])
    pre = Scaled()
    assert not keep(source, Pipe(pre), mode="disk").reused and pre.calls > 0


def test_loading_a_disk_cache_unpickles_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    source = CountingSource()
    written = keep(source, Pipe(Scaled()), mode="disk")
    assert {p.suffix for p in written.path.iterdir()} == {".json", ".safetensors"}

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the input cache must not unpickle")

    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "Unpickler", refuse)
    monkeypatch.setattr(torch, "load", refuse)
    hit = keep(source, Pipe(Scaled()), mode="disk")
    assert hit.reused and len(everything(hit)) == 24


def test_values_the_disk_cache_cannot_store_stay_in_memory() -> None:
    class Odd(Pipe):
        def prepare(self, example: Mapping[str, Any]) -> dict[str, Any]:
            return {**super().prepare(example), "when": object()}

    assert keep(CountingSource(), Odd(Scaled()), mode="disk").kind == "memory"
    split = keep(CountingSource(), Odd(Scaled()), memory_mb=0)
    assert split.kind == "none" and "cannot store without pickling" in split.note
    assert DiskCache(Path("/nonexistent"), {"a": 1}, size=1).open() is None


def test_memory_budget_falls_back_to_disk() -> None:
    split = keep(CountingSource(), Pipe(Scaled()), memory_mb=0)
    assert split.kind == "disk" and not split.reused

    class NoFingerprint(CountingSource):
        def fingerprint(self) -> None:
            return None

    too_big = keep(NoFingerprint(), Pipe(Scaled()), memory_mb=0)
    assert too_big.kind == "decoded" or "cannot fingerprint" in too_big.note
    assert "cannot fingerprint" in too_big.note


def test_planned_reads() -> None:
    def reads(config: TrainerConfig, size: int, world: int) -> tuple[int, int]:
        plan = StepPlan.of(config, train_size=size, world_size=world)
        return plan.epochs, plan.validations

    assert reads(TrainerConfig(max_epochs=3, batch_size=8), 96, 1) == (3, 3)
    assert reads(TrainerConfig(max_steps=5, batch_size=8), 96, 1) == (1, 1)
    assert reads(TrainerConfig(max_steps=30, batch_size=8, eval_every=10), 96, 2) == (5, 4)
    # accumulation: 12 batches of 8 in chunks of 5 are steps of 5, 5 and 2 per epoch
    plan = StepPlan.of(TrainerConfig(max_epochs=2, batch_size=8, grad_accum=5), train_size=96, world_size=1)
    assert (plan.steps_per_epoch, plan.max_steps) == (3, 6)


# --------------------------------------------------------------------------------------------- trainer
class Recorder(Callback):
    def __init__(self) -> None:
        self.train: list[tuple[torch.Tensor, torch.Tensor]] = []
        self.val: list[torch.Tensor] = []

    def on_train_batch_end(self, trainer, batch, output) -> None:
        self.train.append((batch["inputs"]["x"].clone(), batch["meta"]["index"].clone()))

    def on_validation_batch_end(self, trainer, batch, output) -> None:
        self.val.append(batch["inputs"]["x"].clone())


def fit(cache: Any, tmp_path: Path, **options: Any) -> tuple[Recorder, dict[str, torch.Tensor], Any]:
    data = polygraft.load_dataset("synthetic-classification", size=40, in_features=6, seed=2)
    train = ListSource([data[i] for i in range(len(data))], label_names=data.label_names)
    torch.manual_seed(0)
    task = polygraft.create_task("classification", backbone="toy", label_names=data.label_names, dropout=0.0,
                                 backbone_options={"in_features": 6, "hidden": 16})
    task.backbone._preprocessor.deterministic = True  # the toy's vectors are deterministic (undeclared)
    recorder = Recorder()
    config = TrainerConfig(max_epochs=3, batch_size=8, lr=3e-3, progress=False, cache=cache, seed=5, **options)
    trainer = polygraft.Trainer(config, output_dir=tmp_path / str(cache), callbacks=[recorder])
    trainer.fit(task, train_data=train, val_data=train)
    return recorder, {k: v.clone() for k, v in task.state_dict().items()}, trainer


def test_fit_gives_identical_batches_and_weights_with_and_without_the_cache(tmp_path: Path) -> None:
    cached, weights, trainer = fit("auto", tmp_path)
    assert [s.kind for s in trainer.loaders.cache.splits] == ["memory", "memory"]
    plain, plain_weights, plain_trainer = fit(False, tmp_path, num_workers=0)
    assert [s.kind for s in plain_trainer.loaders.cache.splits] == ["none", "none"]
    assert len(cached.train) == len(plain.train) == 15 and len(cached.val) == len(plain.val) == 15
    for (x, index), (y, other) in zip(cached.train, plain.train):
        assert torch.equal(index, other) and torch.equal(x, y)
    assert all(torch.equal(a, b) for a, b in zip(cached.val, plain.val))
    assert all(torch.equal(weights[k], plain_weights[k]) for k in weights)


def test_run_log_says_what_was_cached(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fit("auto", tmp_path)
    err = capsys.readouterr().err
    assert "input cache: train: 40 prepared examples kept in memory (0.0 MB, prepared in " in err
    assert "input cache: val: 40 prepared examples kept in memory" in err


def run(command: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True, env=ENV, timeout=300)


def weights(directory: Path) -> dict[str, torch.Tensor]:
    return load_file(str(directory / "model" / "model.safetensors"))


def test_cached_resume_after_sigkill_and_ddp_match_uncached_runs(tmp_path: Path) -> None:
    reference = tmp_path / "reference"
    assert run([sys.executable, str(SCRIPT), str(reference), "--cache", "false"]).returncode == 0
    interrupted = tmp_path / "interrupted"
    killed = run([sys.executable, str(SCRIPT), str(interrupted), "--kill-at", "17"])
    assert killed.returncode == -9 and "prepared examples kept in memory" in killed.stderr, killed.stderr[-2000:]
    resumed = run([sys.executable, str(SCRIPT), str(interrupted), "--resume"])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    for key, value in weights(reference).items():
        assert torch.equal(value, weights(interrupted)[key]), key
    torchrun = str(Path(sys.executable).with_name("torchrun"))
    ddp = tmp_path / "ddp"
    result = run([torchrun, "--standalone", "--nproc-per-node", "2", str(SCRIPT), str(ddp), "--batch-size", "4"])
    assert result.returncode == 0, result.stderr[-3000:]
    for key, value in weights(reference).items():  # the same global batch of 8, uncached, in one process
        torch.testing.assert_close(weights(ddp)[key], value, rtol=1e-4, atol=1e-5, msg=key)

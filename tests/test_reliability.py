"""The reliability audit's failures, each reproduced (reviews/reliability-2026-12-01.md, row ids in the names):
shared run directories, the input cache on disk, full disks, hostile recipes and options, special files.
Every case must end in one clear error (or a counted skip), fast, never in a traceback, a hang or lost work."""

from __future__ import annotations

import errno
import json
import os
import threading
from pathlib import Path

import pytest
import torch

import polygraft
from polygraft.cli import main
from polygraft.errors import ConfigError, DataError, TrainingError
from polygraft.recipe import Recipe
from polygraft.run import RunDirectory

TOY = {"task": "classification", "backbone": "toy", "backbone_options": {"in_features": 4},
       "data": {"train": {"dataset": "synthetic-classification", "size": 32, "in_features": 4}},
       "trainer": {"max_steps": 2, "batch_size": 8, "progress": False}}


def toy(tmp_path: Path, **changes) -> Recipe:
    return Recipe.from_dict({**TOY, "output_dir": str(tmp_path / "run"), **changes})


# ------------------------------------------------------------------------------------------- run directories
def test_e1_a_second_run_into_a_busy_folder_is_refused_naming_the_holder(tmp_path: Path) -> None:
    run = RunDirectory(tmp_path / "run")
    with run.locked():  # as if another process were training there
        box: dict[str, BaseException] = {}
        worker = threading.Thread(target=lambda: _catch(box, lambda: polygraft.run_recipe(toy(tmp_path))))
        worker.start()
        worker.join(120)
    # flock is per open file description, so a second open in another thread is refused too
    assert isinstance(box.get("error"), TrainingError), box
    assert f"in use by another polygraft run (pid {os.getpid()}, running" in str(box["error"])


def _catch(box: dict[str, BaseException], fn) -> None:
    try:
        fn()
    except BaseException as exc:
        box["error"] = exc


def test_d4_e2_a_new_run_never_mixes_with_an_earlier_one(tmp_path: Path) -> None:
    polygraft.run_recipe(toy(tmp_path))
    with pytest.raises(TrainingError, match=r"already holds a run .*resume=last, or replace it with overwrite=true"):
        polygraft.run_recipe(toy(tmp_path, backbone_options={"in_features": 4, "hidden": 32}))
    # replacing it on purpose removes the old run's files first: nothing of the old model stays
    polygraft.run_recipe(toy(tmp_path, overwrite=True, backbone_options={"in_features": 4, "hidden": 32}))
    assert polygraft.load(tmp_path / "run").backbone.feature_dim == 32


def test_an_unfinished_run_is_refused_by_evaluate_predict_and_load(tmp_path: Path, capsys) -> None:
    polygraft.run_recipe(toy(tmp_path))
    run = RunDirectory(tmp_path / "run")
    run.incomplete_marker.write_text(json.dumps({"pid": 999_999_999, "started": 0, "command": "polygraft x"}))
    with pytest.raises(TrainingError, match=r"did not finish .*no longer running.*resume=last"):
        polygraft.load(run.path)
    assert main(["evaluate", str(run.path)]) == 2 and "did not finish" in capsys.readouterr().err
    assert main(["predict", str(run.path), "[1, 2, 3, 4]"]) == 2 and "did not finish" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------- disk full
def test_d1_a_full_disk_names_the_checkpoint_and_leaves_no_temp_file(tmp_path: Path, monkeypatch) -> None:
    real = torch.save

    def full(state, handle, *args, **kwargs):
        handle.write(b"x" * 100)  # a partial write, then the disk is full
        raise RuntimeError("[enforce fail at inline_container.cc:664] . unexpected pos") from OSError(
            errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full)
    with pytest.raises(TrainingError, match=r"checkpoints/last.pt: no space left on device \(.* free\); no "
                                            "checkpoint was written"):
        polygraft.run_recipe(toy(tmp_path))
    assert not list((tmp_path / "run" / "checkpoints").glob(".*tmp*"))
    monkeypatch.setattr(torch, "save", real)


def test_d3_a_full_disk_while_saving_the_model_says_the_training_is_safe(tmp_path: Path, monkeypatch) -> None:
    import polygraft.model_io as model_io

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(model_io, "save_model", full)
    with pytest.raises(TrainingError, match=r"model: no space left on device .*safe in .*last.pt \(step 2\).*"
                                            "resume=last"):
        polygraft.run_recipe(toy(tmp_path))
    monkeypatch.undo()
    checkpoint = tmp_path / "run" / "checkpoints" / "last.pt"
    written = checkpoint.stat().st_mtime_ns
    polygraft.run_recipe(toy(tmp_path, resume="last"))  # the up-to-date checkpoint is not written again
    assert checkpoint.stat().st_mtime_ns == written
    assert polygraft.load(tmp_path / "run") is not None and not (tmp_path / "run" / ".incomplete").exists()


# ------------------------------------------------------------------------------------------- the input cache
def cached(tmp_path: Path, monkeypatch) -> tuple[Recipe, Path]:
    monkeypatch.setenv("POLYGRAFT_CACHE", str(tmp_path / "cache"))
    recipe = {**TOY, "trainer": {**TOY["trainer"], "cache": "disk"}}
    return Recipe.from_dict({**recipe, "output_dir": str(tmp_path / "a")}), tmp_path / "cache" / "prepared"


@pytest.mark.parametrize("damage", ["labels", "zeros", "header", "json"])
def test_f3_f7_a_damaged_cache_is_found_and_rebuilt(tmp_path: Path, monkeypatch, capsys, damage: str) -> None:
    recipe, root = cached(tmp_path, monkeypatch)
    clean = polygraft.run_recipe(recipe).history[-1]["train/loss"]
    shard = next(root.rglob("00000.safetensors"))
    data = bytearray(shard.read_bytes())
    if damage == "labels":  # same size: swap two digits of the examples' JSON
        at = data.rfind(b'"label":1')
        data[at + 8:at + 9] = b"0"
    elif damage == "zeros":  # same size: zero some tensor bytes
        data[-400:-200] = bytes(200)
    elif damage == "header":  # an absurd header length
        data[:8] = (2**60).to_bytes(8, "little")
    else:  # garbage where the JSON of the examples is
        at = data.rfind(b"{")
        data[at:at + 16] = b"\xff" * 16
    shard.write_bytes(bytes(data))
    capsys.readouterr()
    again = polygraft.run_recipe(Recipe.from_dict({**recipe.to_dict(), "output_dir": str(tmp_path / "b")}))
    err = capsys.readouterr().err
    assert "cannot be used" in err and "rebuilding it" in err, err
    assert ("checksum" in err) if damage != "header" else ("checksum" in err or "damaged" in err)
    assert again.history[-1]["train/loss"] == pytest.approx(clean)  # the same data again, not the tampered one


def test_f5_a_nan_loss_from_the_disk_cache_names_the_cache(tmp_path: Path, monkeypatch) -> None:
    recipe, _ = cached(tmp_path, monkeypatch)
    monkeypatch.setattr("polygraft.tasks.classification.F.cross_entropy",
                        lambda *a, **k: torch.tensor(float("nan"), requires_grad=True))
    with pytest.raises(TrainingError, match=r"loss is nan .*it came from the input cache at .*prepared"):
        polygraft.run_recipe(recipe)


# ------------------------------------------------------------------------------------------- recipes
def test_b1_an_alias_bomb_is_refused_before_anything_copies_it(tmp_path: Path) -> None:
    bomb = "a: &a [x,x,x,x,x,x,x,x,x]\n" + "".join(
        f"{c}: &{c} [{','.join(['*' + p] * 9)}]\n" for p, c in zip("abcdefghi", "bcdefghij"))
    (tmp_path / "laughs.yaml").write_text("task: classification\nbackbone: toy\n" + bomb.replace("a: &a", "junk: &a"))
    with pytest.raises(ConfigError, match="expands to more than 100,000 values"):
        Recipe.from_yaml(tmp_path / "laughs.yaml")


def test_b3_a_duplicate_key_names_both_lines(tmp_path: Path) -> None:
    (tmp_path / "dup.yaml").write_text("task: classification\nbackbone: toy\ntrainer: {lr: 0.1}\ntrainer: {lr: 5}\n")
    with pytest.raises(ConfigError, match=r"dup.yaml:4: duplicate key 'trainer' \(first at line 3\)"):
        Recipe.from_yaml(tmp_path / "dup.yaml")


def test_b6_a_huge_recipe_is_refused_before_it_is_parsed(tmp_path: Path) -> None:
    (tmp_path / "big.yaml").write_text("backbone: toy\n# " + "x" * 2_000_000 + "\n")
    with pytest.raises(ConfigError, match=r"2.0 MB of YAML; files over 1 MB are refused"):
        Recipe.from_yaml(tmp_path / "big.yaml")


@pytest.mark.parametrize(("change", "message"), [
    ({"task": True}, "task must be a component name"),
    ({"backbone": -1}, "backbone must be a component name"),
    ({"weights": {"a": 1}}, "weights must be a registered alias, a local path or a polygraft run"),
    ({"trainer": {"device": "bf16-mixed"}}, "trainer.device must be auto, cpu, cuda, cuda:N or mps"),
    ({"trainer": {"batch_size": 10**30}}, r"trainer.batch_size must be in \[1, 2,147,483,647\]"),
    ({"task_options": {"dropout": 7}}, r"dropout must be in \[0, 1\)"),
    ({"overwrite": "yes please"}, "overwrite must be true or false"),
])
def test_j_hostile_values_get_one_line_errors(tmp_path: Path, change: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        polygraft.run_recipe(toy(tmp_path, **change))


# ------------------------------------------------------------------------------------------- resources
def test_a1_a2_too_many_workers_are_refused_before_one_is_forked(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"num_workers=100,000 is more than this machine can use \(\d+ usable "
                                          r"cores\): use at most \d+"):
        polygraft.run_recipe(toy(tmp_path, trainer={**TOY["trainer"], "num_workers": 100_000}))


@pytest.mark.parametrize("option", [{"size": 10**9}, {"in_features": 10**9}, {"num_classes": -3}])
def test_a10_generated_sizes_are_bounded(option: dict) -> None:
    with pytest.raises(ConfigError, match=r"synthetic-classification: .* must be between"):
        polygraft.load_dataset("synthetic-classification", **option)


def test_api_refuses_a_negative_class_count() -> None:
    with pytest.raises(ConfigError, match="num_classes must be a whole number between 1 and 1,000,000"):
        polygraft.create_task("classification", backbone="toy", num_classes=-2, backbone_options={"in_features": 2})


# ------------------------------------------------------------------------------------------- special files
def test_g4_g6_fifos_and_link_loops_are_named_without_opening_them(tmp_path: Path) -> None:
    from polygraft.paths import file_problem

    os.mkfifo(tmp_path / "clip.wav")
    (tmp_path / "a.wav").symlink_to(tmp_path / "b.wav")
    (tmp_path / "b.wav").symlink_to(tmp_path / "a.wav")
    (tmp_path / "gone.wav").symlink_to(tmp_path / "missing.wav")
    assert file_problem(tmp_path / "clip.wav") == "not a regular file (a FIFO); give the path of a file"
    assert "loop of symbolic links" in file_problem(tmp_path / "a.wav")
    assert "which does not exist" in file_problem(tmp_path / "gone.wav")
    assert file_problem("/dev/zero").startswith("not a regular file (a character device)")


def test_h6_stdin_and_errors_of_predict_are_clean(tmp_path: Path, capsys) -> None:
    polygraft.run_recipe(toy(tmp_path))
    assert main(["predict", str(tmp_path / "run")]) == 2
    assert "give something to predict" in capsys.readouterr().err
    assert main(["predict", str(tmp_path / "run"), "--file", str(tmp_path / "nope.txt")]) == 2
    assert "nope.txt: cannot read inputs" in capsys.readouterr().err


def test_dataerror_is_not_swallowed_by_the_out_of_memory_guard() -> None:
    from polygraft.training.checks import out_of_memory_named

    with pytest.raises(TrainingError, match=r"out of memory at step 3 \(a batch of 64 examples: .*lower "
                                            "trainer.batch_size"), out_of_memory_named(3, 64):
        raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 71976002 bytes")
    with pytest.raises(DataError), out_of_memory_named(3, 64):
        raise DataError("a bad row")

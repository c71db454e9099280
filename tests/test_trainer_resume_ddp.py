"""Resume after SIGKILL reproduces an uninterrupted run; DDP on 2 CPU processes matches one process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

SCRIPT = Path(__file__).parent / "scripts" / "train_toy.py"
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}


def run(command: list[str], timeout: float = 240) -> subprocess.CompletedProcess:
    """Run in a new session and kill the whole group on time-out (no orphaned ranks)."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV,
                               start_new_session=True)
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        out, err = process.communicate()
        pytest.fail(f"{command[:3]} did not finish in {timeout} s:\n{err[-3000:]}")
    return subprocess.CompletedProcess(command, process.returncode, out, err)


def train(out: Path, *extra: str) -> subprocess.CompletedProcess:
    return run([sys.executable, str(SCRIPT), str(out), *extra])


def weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run / "model" / "model.safetensors"))


def test_sigkill_then_resume_gives_identical_weights(tmp_path: Path) -> None:
    reference = tmp_path / "reference"
    assert train(reference).returncode == 0
    interrupted = tmp_path / "interrupted"
    killed = train(interrupted, "--kill-at", "17")
    assert killed.returncode == -9, killed.stderr  # really SIGKILLed mid-run
    assert not (interrupted / "model").exists()
    assert (interrupted / "checkpoints" / "last.pt").exists()
    resumed = train(interrupted, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    expected, got = weights(reference), weights(interrupted)
    assert expected.keys() == got.keys()
    for key in expected:
        assert torch.equal(expected[key], got[key]), key
    steps = [row["step"] for row in map(json.loads, (interrupted / "metrics.jsonl").read_text().splitlines())
             if "train/loss" in row]
    assert steps == sorted(set(steps)), "rows of the lost steps must not be duplicated"
    measured = ("train/wall_time_s", "train/setup_s", "train/validation_s", "train/checkpoint_s", "train/samples_per_s",
                "memory/")  # differ run to run
    expected_results, got_results = (
        {k: v for k, v in json.loads((run / "results.json").read_text()).items() if not k.startswith(measured)}
        for run in (reference, interrupted))
    assert got_results == expected_results


def test_sigterm_stops_at_a_step_boundary_and_resume_is_bit_identical(tmp_path: Path) -> None:
    """SLURM / Kubernetes send SIGTERM: the run stops after the current step, checkpoints that step, says how to
    resume and exits 143; the folder is marked unfinished until the resumed run completes it identically."""
    import polygraft
    from polygraft.errors import TrainingError

    reference = tmp_path / "reference"
    assert train(reference).returncode == 0
    stopped = tmp_path / "stopped"
    term = train(stopped, "--term-at", "17")
    assert term.returncode == 143, term.stderr
    assert "stopped by SIGTERM at step 17" in term.stderr and "resume=last" in term.stderr
    assert torch.load(stopped / "checkpoints" / "last.pt", weights_only=True)["trainer"]["global_step"] == 17
    assert not (stopped / "model").exists() and (stopped / ".incomplete").exists()
    with pytest.raises(TrainingError, match="did not finish"):
        polygraft.load(stopped)
    resumed = train(stopped, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert not (stopped / ".incomplete").exists()
    expected, got = weights(reference), weights(stopped)
    assert all(torch.equal(expected[key], got[key]) for key in expected)
    measured = ("train/wall_time_s", "train/setup_s", "train/validation_s", "train/checkpoint_s", "train/samples_per_s",
                "memory/")
    expected_results, got_results = (
        {k: v for k, v in json.loads((run / "results.json").read_text()).items() if not k.startswith(measured)}
        for run in (reference, stopped))
    assert got_results == expected_results


def test_resume_with_a_different_recipe_is_refused(tmp_path: Path) -> None:
    import polygraft
    from polygraft.errors import TrainingError

    run = tmp_path / "run"
    data = polygraft.load_dataset("synthetic-classification", size=32, in_features=6)

    def fit(lr: float, resume: str | None) -> None:
        task = polygraft.create_task("classification", backbone="toy", label_names=data.label_names,
                                     backbone_options={"in_features": 6})
        config = polygraft.TrainerConfig(max_steps=4, batch_size=8, lr=lr, progress=False)
        polygraft.Trainer(config, output_dir=run, resume=resume).fit(task, train_data=data)

    fit(1e-3, None)
    with pytest.raises(TrainingError, match="different recipe"):
        fit(5e-3, "last")


def test_ddp_two_processes_match_one_process_with_same_global_batch(tmp_path: Path) -> None:
    single = tmp_path / "single"
    assert train(single, "--batch-size", "8", "--max-steps", "12").returncode == 0
    ddp = tmp_path / "ddp"
    torchrun = str(Path(sys.executable).with_name("torchrun"))
    result = run([torchrun, "--standalone", "--nproc-per-node", "2", str(SCRIPT), str(ddp),
                   "--batch-size", "4", "--max-steps", "12"])
    assert result.returncode == 0, result.stderr[-3000:]
    expected, got = weights(single), weights(ddp)
    for key in expected:
        torch.testing.assert_close(got[key], expected[key], rtol=1e-4, atol=1e-5, msg=key)
    single_results = json.loads((single / "results.json").read_text())
    ddp_results = json.loads((ddp / "results.json").read_text())
    assert ddp_results["val/accuracy"] == pytest.approx(single_results["val/accuracy"], abs=0.03)

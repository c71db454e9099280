"""Preemption from outside, as SLURM, Kubernetes or a user sends it: SIGTERM to ``polygraft finetune`` stops it at
a step boundary with a checkpoint and exit code 143; SIGTERM to ``polygraft compare`` ends its child run too; a
child past ``--timeout`` is stopped and the comparison goes on."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}
LONG = {
    "task": "classification", "backbone": "toy", "backbone_options": {"in_features": 4},
    "data": {"train": {"dataset": "synthetic-classification", "size": 64, "in_features": 4}},
    "trainer": {"max_steps": 1_000_000, "batch_size": 8, "log_every": 1, "progress": False},
}


def start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "polygraft", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=ENV, start_new_session=True)


def wait_for(path: Path, process: subprocess.Popen[str], timeout: float = 180) -> None:
    """Until ``path`` has a line (the run is training)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.is_file() and path.read_text().strip():
            return
        if process.poll() is not None:
            pytest.fail(f"the run ended early:\n{process.communicate()[1][-3000:]}")
        time.sleep(0.1)
    os.killpg(process.pid, signal.SIGKILL)
    pytest.fail(f"{path} never appeared")


def finish(process: subprocess.Popen[str], timeout: float = 180) -> tuple[int, str]:
    try:
        _, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        pytest.fail("did not stop after the signal")
    return process.returncode, err


def test_sigterm_to_finetune_checkpoints_and_exits_143(tmp_path: Path) -> None:
    recipe = tmp_path / "long.yaml"
    recipe.write_text(yaml.safe_dump({**LONG, "output_dir": str(tmp_path / "run")}))
    process = start("finetune", str(recipe))
    wait_for(tmp_path / "run" / "metrics.jsonl", process)
    os.killpg(process.pid, signal.SIGTERM)
    code, err = finish(process)
    assert code == 143, err[-2000:]
    assert "stopped by SIGTERM at step" in err and "resume=last" in err
    import torch

    step = torch.load(tmp_path / "run" / "checkpoints" / "last.pt", weights_only=True)["trainer"]["global_step"]
    assert step >= 1
    resumed = subprocess.run([sys.executable, "-m", "polygraft", "finetune", str(recipe), "resume=last",
                              f"trainer.max_steps={step + 2}", "--json"], capture_output=True, text=True, env=ENV,
                             timeout=180)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["train/steps"] == step + 2 and not (tmp_path / "run" / ".incomplete").exists()


def child_pid(run_dir: Path) -> int:
    return int(json.loads((run_dir / ".lock").read_text())["pid"])


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_sigterm_to_compare_ends_its_child(tmp_path: Path) -> None:
    recipe = tmp_path / "long.yaml"
    recipe.write_text(yaml.safe_dump(LONG))
    process = start("compare", str(recipe), "--output", str(tmp_path / "cmp"))
    run_dir = tmp_path / "cmp" / "runs" / "long-seed0"
    wait_for(run_dir / "metrics.jsonl", process)
    pid = child_pid(run_dir)
    os.killpg(process.pid, signal.SIGTERM)  # compare's own group: the child runs in a session of its own
    code, err = finish(process)
    assert code == 143, err[-2000:]
    assert "interrupted by SIGTERM" in err and "run the same command again to resume" in err
    for _ in range(50):
        if not alive(pid):
            break
        time.sleep(0.1)
    assert not alive(pid), "the child run outlived compare"
    assert (run_dir / "checkpoints" / "last.pt").is_file()  # it stopped cleanly: a re-run resumes it


def test_a_child_past_its_time_limit_is_stopped_and_counted_failed(tmp_path: Path) -> None:
    from polygraft.compare_child import run_child

    started = time.monotonic()
    result = run_child([sys.executable, "-c", "import time; print('working', flush=True); time.sleep(600)"],
                       log_file=tmp_path / "train.log", timeout=1.0, grace=5.0)
    assert result.timed_out and result.returncode == -signal.SIGTERM and "working" in result.output
    assert time.monotonic() - started < 30

"""A fused model under DDP (2 gloo ranks, torchrun) with whole branches missing from micro-batches, modality
dropout, auxiliary heads and a frozen branch: DDP (find_unused_parameters=False) must meet no unused parameter."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parent / "scripts" / "train_fusion_ddp.py"


def test_fusion_trains_under_ddp_with_missing_modalities(tmp_path: Path) -> None:
    torchrun = str(Path(sys.executable).with_name("torchrun"))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}
    process = subprocess.Popen([torchrun, "--standalone", "--nproc-per-node", "2", str(SCRIPT), str(tmp_path / "run")],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                               start_new_session=True)
    try:
        _, err = process.communicate(timeout=180)
    except subprocess.TimeoutExpired:  # ranks waiting on a gradient that never comes hang: stop them all
        process.terminate()  # torchrun stops its ranks (they run in sessions of their own)
        try:
            _, err = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            err = ""
        pytest.fail(f"torchrun did not finish (a rank waited on a parameter without a gradient?):\n{err[-3000:]}")
    assert process.returncode == 0, err[-3000:]
    assert "unused" not in err.lower() and "did not receive grad" not in err
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["train/steps"] == 8 and 0.0 <= results["val/accuracy"] <= 1.0

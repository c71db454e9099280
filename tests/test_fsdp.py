"""trainer.distributed: fsdp (FSDP2 on 2 gloo ranks, CPU) against DDP; Distributed Checkpoints that resume on
another number of ranks (one process, and two nodes on localhost with c10d rendezvous). The ranks run as real
torchrun processes (tests/scripts/train_fsdp.py); one launch trains every run it needs."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

import polygraft
from polygraft.errors import TrainingError

SCRIPT = Path(__file__).parent / "scripts" / "train_fsdp.py"
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}
TORCHRUN = str(Path(sys.executable).with_name("torchrun"))


def start(command: list[str]) -> subprocess.Popen:
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV,
                            start_new_session=True)


def finish(process: subprocess.Popen, timeout: float = 1800) -> subprocess.CompletedProcess:
    """Wait; a hang guard (not a speed limit): past half an hour kill the whole group (no orphaned ranks)."""
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        out, err = process.communicate()
        pytest.fail(f"{process.args[:4]} did not finish in {timeout} s:\n{err[-3000:]}")
    assert process.returncode == 0, err[-4000:]
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Every run of the module: ddp/fsdp pairs on 2 ranks; a 2-rank checkpoint resumed on 1 process; a 1-process
    checkpoint resumed on 2 nodes of one rank each (localhost, c10d rendezvous)."""
    out = tmp_path_factory.mktemp("fsdp")
    logs = {"compare": finish(start([TORCHRUN, "--standalone", "--nproc-per-node", "2", str(SCRIPT), str(out),
                                      "compare"])).stderr}
    logs["resume-one"] = finish(start([sys.executable, str(SCRIPT), str(out), "resume-one"])).stderr
    port = free_port()
    nodes = [start([TORCHRUN, "--nnodes", "2", "--node-rank", str(rank), "--nproc-per-node", "1",
                    "--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{port}", "--rdzv-id", "fsdp-test",
                    str(SCRIPT), str(out), "resume-two"]) for rank in (0, 1)]
    logs["resume-two"] = "".join(finish(node).stderr for node in nodes)
    return {"out": out, "logs": logs}


def losses(run: Path) -> dict[int, float]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return {row["step"]: row["train/loss"] for row in rows if "train/loss" in row}


def results(run: Path) -> dict[str, Any]:
    return json.loads((run / "results.json").read_text())


def held(out: Path, name: str) -> int:
    return max(json.loads((out / f"{name}.bytes-rank{rank}.json").read_text())["held_bytes"] for rank in (0, 1))


@pytest.mark.parametrize("model", ["toy", "bert"])
def test_fsdp_losses_match_ddp_and_each_rank_holds_half(runs: dict[str, Any], model: str) -> None:
    out = runs["out"]
    ddp, fsdp = losses(out / f"{model}-ddp"), losses(out / f"{model}-fsdp")
    assert sorted(ddp) == sorted(fsdp) == list(range(1, 51))  # 50 fp32 steps, clipped, 2 micro-batches each
    worst = max(abs(fsdp[step] - ddp[step]) / abs(ddp[step]) for step in ddp)
    assert worst <= 1e-5, worst
    assert ddp[50] < 0.5 * ddp[1]  # it learned: the agreement is not that of two idle runs
    for key in ("val/loss", "val/accuracy", "test/loss"):  # validation in lockstep (9 + 8 examples per rank)
        assert results(out / f"{model}-fsdp")[key] == pytest.approx(results(out / f"{model}-ddp")[key], rel=1e-5)
    ratio = held(out, f"{model}-fsdp") / held(out, f"{model}-ddp")
    print(f"{model}: each fsdp rank holds {ratio:.3f}x the parameter + optimizer bytes of a ddp rank")
    assert ratio <= 0.55


def test_a_tracker_writes_on_the_main_process_only(runs: dict[str, Any]) -> None:
    """toy-ddp ran on 2 ranks with the tensorboard callback: every step's loss is in the event files once."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = runs["out"] / "toy-ddp"
    events = EventAccumulator(str(run / "tensorboard"), size_guidance={"scalars": 0}).Reload()
    assert [(e.step, e.value) for e in events.Scalars("train/loss")] == [
        (step, pytest.approx(loss)) for step, loss in sorted(losses(run).items())]


@pytest.mark.parametrize("name", ["strategies", "lora"])
def test_strategies_train_under_fsdp_as_under_ddp(runs: dict[str, Any], name: str) -> None:
    """gradual-unfreeze + layer-wise LR decay + EMA on the toy model; LoRA + linear-probe on a tiny BERT (merged
    into the saved weights): the saved models and results agree with DDP's."""
    out = runs["out"]
    ddp, fsdp = (load_file(str(out / f"{name}-{kind}" / "model" / "model.safetensors")) for kind in ("ddp", "fsdp"))
    assert ddp.keys() == fsdp.keys() and not any("lora_" in key for key in fsdp)
    for key in ddp:
        torch.testing.assert_close(fsdp[key], ddp[key], rtol=1e-5, atol=2e-6, msg=key)
    a, b = results(out / f"{name}-ddp"), results(out / f"{name}-fsdp")
    assert b["params/trainable"] == a["params/trainable"] < a["params/total"]
    assert b["val/loss"] == pytest.approx(a["val/loss"], rel=1e-5)


def test_a_checkpoint_of_two_ranks_resumes_on_one_and_one_on_two_nodes(runs: dict[str, Any]) -> None:
    """Same global batch (4 × 2 ranks or 8 × 1 process, grad_accum 2) and a training set of whole global batches,
    so every step after the resume sees the examples the uninterrupted 2-rank run saw."""
    out, logs = runs["out"], runs["logs"]
    reference = losses(out / "toy-fsdp")
    assert "resumed a checkpoint of 2 process(es) on 1" in logs["resume-one"]
    assert "resumed a checkpoint of 1 process(es) on 2" in logs["resume-two"]
    for name in ("toy-fsdp-stopped", "toy-fsdp-one-stopped"):
        resumed = losses(out / name)
        assert sorted(resumed) == list(range(1, 51)), name  # the stop at 20 left no gap and no duplicate rows
        worst = max(abs(resumed[step] - reference[step]) / reference[step] for step in range(21, 51))
        assert worst <= 1e-5, (name, worst)
        assert (out / name / "checkpoints" / "last.dcp" / ".metadata").is_file()
        assert not (out / name / ".incomplete").exists()


def test_an_fsdp_run_loads_and_exports_like_any_other(runs: dict[str, Any], tmp_path: Path) -> None:
    from polygraft.export import export_model

    out = runs["out"]
    examples = [{"x": [0.1 * i, -0.2, 0.3, 1.0, -1.0, 0.5]} for i in range(5)]
    fsdp, ddp = polygraft.load(out / "toy-fsdp"), polygraft.load(out / "toy-ddp")
    for a, b in zip(fsdp.predict_examples(examples), ddp.predict_examples(examples)):
        assert a["label"] == b["label"] and a["score"] == pytest.approx(b["score"], abs=1e-5)
    exported = export_model(out / "toy-fsdp", "onnx", tmp_path / "onnx")
    assert (exported.directory / "model.onnx").is_file()


def fit_one(run: Path, **trainer: Any) -> None:
    data = polygraft.load_dataset("synthetic-classification", size=32, in_features=6)
    task = polygraft.create_task("classification", backbone="toy", label_names=data.label_names,
                                 backbone_options={"in_features": 6})
    resume = trainer.pop("resume", None)
    config = polygraft.TrainerConfig(**{"max_steps": 4, "batch_size": 8, "progress": False,
                                        "distributed": "fsdp", **trainer})
    polygraft.Trainer(config, output_dir=run, resume=resume).fit(task, train_data=data)


def test_resuming_a_distributed_checkpoint_with_another_recipe_is_refused(tmp_path: Path) -> None:
    run = tmp_path / "run"
    fit_one(run, lr=1e-3)
    assert (run / "checkpoints" / "last.dcp" / ".metadata").is_file() and not (run / "checkpoints/last.pt").exists()
    with pytest.raises(TrainingError, match="different recipe"):
        fit_one(run, lr=5e-3, resume="last")
    with pytest.raises(TrainingError, match=r"global batch of 8 .* this run's is 16"):
        fit_one(run, lr=1e-3, batch_size=16, resume="last")
    with pytest.raises(TrainingError, match=r"an fsdp run's checkpoint is checkpoints/last\.dcp"):
        fit_one(run, lr=1e-3, distributed="ddp", resume="last")


def test_blocks_come_from_layer_groups_and_a_backbone_without_any_is_one_unit(tmp_path: Path) -> None:
    import torch.distributed as dist

    from polygraft.training.fsdp import ShardedModule

    task = polygraft.create_task("classification", backbone="toy", label_names=["a", "b"],
                                 backbone_options={"in_features": 4, "depth": 2})
    assert task.backbone.shard_units() == [task.backbone.stem, *task.backbone.blocks]
    blockless = polygraft.create_task("classification", backbone="toy", label_names=["a", "b"],
                                      backbone_options={"in_features": 4})
    blockless.backbone.layer_groups = lambda: []  # type: ignore[method-assign]  # declares nothing
    dist.init_process_group("gloo", store=dist.FileStore(str(tmp_path / "store"), 1), rank=0, world_size=1)
    try:
        sharded = ShardedModule(blockless, device=torch.device("cpu"), world_size=1)
        assert sharded.units == 0 and "names no blocks" in sharded.lines[0] and "whole model" in sharded.lines[0]
        before = blockless.backbone.stem.weight.numel()
        assert before == 0  # the original's weights are released while the copy trains
        output = sharded.module({"inputs": {"x": torch.zeros(2, 4)}, "labels": torch.tensor([0, 1])})
        output.loss.backward()
        gathered = sharded.gather()
        assert gathered is blockless and gathered.backbone.stem.weight.shape == (16, 4)
    finally:
        dist.destroy_process_group()


def _wav2vec2() -> tuple[Any, dict[str, Any]]:
    backbone = polygraft.create_backbone("wav2vec2", size="tiny")
    generator = torch.Generator().manual_seed(0)
    pre = backbone.preprocessor
    clips = [{"audio": torch.randn(1600 + 400 * i, generator=generator).numpy(), "sample_rate": 16000}
             for i in range(2)]
    return backbone, pre.collate([pre(clip) for clip in clips])


def _timm() -> tuple[Any, dict[str, Any]]:
    backbone = polygraft.create_backbone("timm", model_name="test_resnet")
    return backbone, {"pixel_values": torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))}


@pytest.mark.parametrize("build", [_timm, _wav2vec2], ids=["timm-stages", "wav2vec2-layers"])
def test_timm_stages_and_wav2vec2_layers_are_the_units_and_shard_without_changing_the_output(
        tmp_path: Path, build: Any) -> None:
    import copy

    import torch.distributed as dist
    from torch.distributed.fsdp import fully_shard

    backbone, batch = build()
    backbone.eval()
    units = backbone.shard_units()
    names = {id(m): name for name, m in backbone.named_modules()}
    if build is _wav2vec2:
        assert [names[id(u)] for u in units[-len(backbone.model.encoder.layers):]] == [
            f"model.encoder.layers.{i}" for i in range(len(backbone.model.encoder.layers))]
    else:
        assert [names[id(u)] for u in units] == [f"model.layer{i}.0" for i in range(1, 5)]  # the stages
    assert len(units) >= 3 and all(id(u) in names for u in units)
    with torch.no_grad():
        expected = backbone(batch).pooled
    sharded = copy.deepcopy(backbone)
    dist.init_process_group("gloo", store=dist.FileStore(str(tmp_path / "store"), 1), rank=0, world_size=1)
    try:
        by_name = dict(sharded.named_modules())
        for unit in units:
            fully_shard(by_name[names[id(unit)]])
        fully_shard(sharded)
        with torch.no_grad():
            torch.testing.assert_close(sharded(batch).pooled, expected)
    finally:
        dist.destroy_process_group()


def test_bf16_mixed_gathers_parameters_in_bf16_and_keeps_float32_weights_and_gradients(tmp_path: Path) -> None:
    import torch.distributed as dist

    from polygraft.training.fsdp import ShardedModule

    task = polygraft.create_task("classification", backbone="toy", label_names=["a", "b"],
                                 backbone_options={"in_features": 4, "depth": 2})
    dist.init_process_group("gloo", store=dist.FileStore(str(tmp_path / "store"), 1), rank=0, world_size=1)
    try:
        sharded = ShardedModule(task, device=torch.device("cpu"), world_size=1, dtype=torch.bfloat16)
        assert sharded.units == 3
        seen: list[torch.dtype] = []
        block = sharded.module.backbone.blocks[0]
        block.register_forward_pre_hook(lambda module, args: seen.append(next(module.parameters()).dtype))
        output = sharded.module({"inputs": {"x": torch.randn(3, 4)}, "labels": torch.tensor([0, 1, 1])})
        output.loss.backward()
        assert seen == [torch.bfloat16]
        params = list(sharded.module.parameters())
        assert all(p.dtype == torch.float32 and p.grad is not None and p.grad.dtype == torch.float32
                   for p in params)
    finally:
        dist.destroy_process_group()

"""FSDP2 against DDP on CPU (gloo), run by tests/test_fsdp.py as real torchrun processes. One launch trains several
runs in turn, each into OUT/NAME (see SUITES):

    torchrun --standalone --nproc-per-node 2 train_fsdp.py OUT compare     # ddp and fsdp runs, stopped runs
    python train_fsdp.py OUT resume-one                                     # the 2-rank checkpoint on 1 process
    torchrun --nnodes 2 --node-rank N ... train_fsdp.py OUT resume-two      # the 1-process checkpoint on 2 ranks

Every run uses the same global batch (batch_size × grad_accum × processes = 16): 2 ranks take batch 4, one
process batch 8, both with grad_accum 2, so their steps see the same examples.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import torch

import polygraft
from polygraft.interfaces import Callback, ListSource

WORDS = ["the", "a", "cat", "dog", "sat", "ran", "on", "mat", "good", "bad", "film", "was", "not", "very"]


class TermAt(Callback):
    """SIGTERM this process after step ``step``, as a scheduler would (every rank gets it at the same step)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_step_end(self, trainer, step, loss, batch, output):
        if step == self.step:
            os.kill(os.getpid(), signal.SIGTERM)


class HeldBytes(Callback):
    """Parameter + optimizer bytes this rank holds after the first step (optimizer states exist then)."""

    def __init__(self, out: Path) -> None:
        self.out = out

    def on_train_step_end(self, trainer, step, loss, batch, output):
        if step == 1:
            from polygraft.training.fsdp import held_bytes

            held = held_bytes(trainer.module, trainer.optimizer)
            self.out.write_text(json.dumps({"held_bytes": held}))


def vocab(directory: Path) -> str:
    letters = [chr(c) for c in range(ord("a"), ord("z") + 1)]
    path = directory / "vocab.txt"
    if not path.exists():
        tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS, *letters, *[f"##{c}" for c in letters]]
        path.write_text("\n".join(dict.fromkeys(tokens)) + "\n")
    return str(path)


def toy_data() -> tuple[Any, Any]:
    train = polygraft.load_dataset("synthetic-classification", size=96, in_features=6, seed=3)
    val = polygraft.load_dataset("synthetic-classification", size=17, in_features=6, seed=4)  # 9 + 8 per rank
    return train, val


def text_data() -> tuple[ListSource, ListSource]:
    generator = torch.Generator().manual_seed(0)
    rows = []
    for i in range(64):
        words = [WORDS[int(j)] for j in torch.randint(0, len(WORDS), (6,), generator=generator)]
        rows.append({"text": " ".join(words), "label": "good" if "good" in words or i % 3 == 0 else "bad"})
    return ListSource(rows[:48], label_names=["bad", "good"]), ListSource(rows[48:], label_names=["bad", "good"])


def fit(out: Path, name: str, *, model: str, distributed: str, steps: int, strategy: Any = None,
        callbacks: tuple[Callback, ...] = (), resume: bool = False, **trainer: Any) -> Any:
    from polygraft.finetune import build_strategies

    world = int(os.environ.get("WORLD_SIZE", "1"))
    torch.manual_seed(0)  # the same initial weights in every run
    if model == "toy":
        train, val = toy_data()
        task = polygraft.create_task("classification", backbone="toy", label_names=train.label_names, dropout=0.0,
                                     backbone_options={"in_features": 6, "hidden": 32, "depth": 2})
    else:
        train, val = text_data()
        task = polygraft.create_task("classification", backbone="bert", label_names=train.label_names,
                                     dropout=0.0, backbone_options={
                                         "tokenizer": vocab(out), "hidden_size": 32, "num_hidden_layers": 2,
                                         "num_attention_heads": 2, "intermediate_size": 64, "max_length": 16,
                                         "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0})
    config = polygraft.TrainerConfig(
        max_steps=steps, batch_size=8 // world, grad_accum=2, lr=3e-3, clip_grad_norm=0.5, log_every=1,
        progress=False, seed=11, distributed=distributed, checkpoint_every=10, warmup_steps=3, **trainer)
    strategies = build_strategies(strategy) if strategy else []
    held = HeldBytes(out / f"{name}.bytes-rank{os.environ.get('RANK', '0')}.json")
    result = polygraft.Trainer(config, output_dir=out / name, strategies=strategies,
                               callbacks=[held, *callbacks], resume="last" if resume else None).fit(
        task, train_data=train, val_data=val, test_data=val)
    return result


SUITES = {
    "compare": [
        dict(name="toy-ddp", model="toy", distributed="ddp", steps=50, tensorboard=True),  # on rank 0 only
        dict(name="toy-fsdp", model="toy", distributed="fsdp", steps=50),
        dict(name="bert-ddp", model="bert", distributed="ddp", steps=50),
        dict(name="bert-fsdp", model="bert", distributed="fsdp", steps=50),
        dict(name="toy-fsdp-stopped", model="toy", distributed="fsdp", steps=50, stop=20),
        *(dict(name=f"strategies-{kind}", model="toy", distributed=kind, steps=12,
               strategy=[{"name": "gradual-unfreeze", "every_steps": 4}, "layer-wise-lr-decay",
                         {"name": "ema", "decay": 0.9}]) for kind in ("ddp", "fsdp")),
        *(dict(name=f"lora-{kind}", model="bert", distributed=kind, steps=8,
               strategy=[{"name": "lora", "r": 4, "dropout": 0.0}, "linear-probe"]) for kind in ("ddp", "fsdp")),
    ],
    "resume-one": [
        dict(name="toy-fsdp-stopped", model="toy", distributed="fsdp", steps=50, resume=True),
        dict(name="toy-fsdp-one-stopped", model="toy", distributed="fsdp", steps=50, stop=20),
    ],
    "resume-two": [dict(name="toy-fsdp-one-stopped", model="toy", distributed="fsdp", steps=50, resume=True)],
}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("suite", choices=sorted(SUITES))
    args = parser.parse_args()
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if "WORLD_SIZE" in os.environ:  # one process group for all the fits (the trainer then leaves it alone)
        torch.distributed.init_process_group("gloo")
    for job in SUITES[args.suite]:
        job = dict(job)
        stop = job.pop("stop", None)
        callbacks: list[Callback] = [TermAt(stop)] if stop else []
        if job.pop("tensorboard", False):
            from polygraft.builtin.trackers import TensorBoardTracker

            callbacks.append(TensorBoardTracker())
        result = fit(out, callbacks=tuple(callbacks), **job)
        if stop and result.interrupted != "SIGTERM":
            print(f"{job['name']}: expected to stop at step {stop}, got {result.stop_reason}", file=sys.stderr)
            return 1
    if torch.distributed.is_initialized():
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Train the toy classifier; used by the resume (SIGKILL) and DDP tests as a real subprocess.

    python train_toy.py OUT --batch-size 8 --max-steps 30 [--kill-at 17 | --term-at 17] [--resume]
    torchrun --standalone --nproc-per-node 2 train_toy.py OUT --batch-size 4 ...
"""

from __future__ import annotations

import argparse
import os
import signal

import torch

import polygraft
from polygraft.interfaces import Callback


class KillAt(Callback):
    """SIGKILL this very process after optimizer step ``step``: nothing gets to clean up."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_step_end(self, trainer, step, loss, batch, output):
        if step == self.step:
            os.kill(os.getpid(), signal.SIGKILL)


class TermAt(Callback):
    """SIGTERM this process after optimizer step ``step``, as a scheduler would: the trainer stops cleanly."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_step_end(self, trainer, step, loss, batch, output):
        if step == self.step:
            os.kill(os.getpid(), signal.SIGTERM)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-steps", type=int, default=30)
    parser.add_argument("--kill-at", type=int)
    parser.add_argument("--term-at", type=int)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--checkpoint-every", type=int, default=10)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)  # same initial weights in every run
    data = polygraft.load_dataset("synthetic-classification", size=96, in_features=6, seed=3)
    task = polygraft.create_task("classification", backbone="toy", label_names=data.label_names, dropout=0.0,
                                 backbone_options={"in_features": 6, "hidden": 32})
    config = polygraft.TrainerConfig(max_steps=args.max_steps, batch_size=args.batch_size, lr=3e-3,
                                     checkpoint_every=args.checkpoint_every, log_every=5, progress=False,
                                     warmup_steps=5, seed=11)
    callbacks = [KillAt(args.kill_at)] if args.kill_at else [TermAt(args.term_at)] if args.term_at else []
    trainer = polygraft.Trainer(config, output_dir=args.out, callbacks=callbacks,
                                resume="last" if args.resume else None)
    result = trainer.fit(task, train_data=data, val_data=data)
    if result.interrupted:
        from polygraft.training.signals import EXIT_CODES

        return EXIT_CODES[result.interrupted]
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

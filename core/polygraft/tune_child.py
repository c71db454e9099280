"""One trial of ``polygraft tune``: ``python -m polygraft.tune_child RECIPE key=value ...`` (or under torchrun).

It is ``polygraft finetune`` with one more callback, :class:`PruningGate`, that lets the parent judge every
validation before training goes on. After each validation (but the last) rank 0 writes the step into the gate file
(``POLYGRAFT_TUNE_GATE``) and waits until the parent, having read that validation's row in the run's own
``metrics.jsonl``, answers in the decision file (``POLYGRAFT_TUNE_DECISION``): go on, or prune. Rank 0's answer
reaches every rank (``TrainerView.dist.any``), so all ranks wait for the same decision. A pruned trial is stopped
by the parent with SIGTERM to its process group, as a scheduler stops a job: every rank waits at the gate until
its signal has arrived, so all of them stop after the same step, with a checkpoint. Without the gate a fast trial
would run past the validation that pruned it before the signal lands, and the steps a pruned trial costs would
depend on the machine's load.

When the run ends, rank 0 writes ``tune_trial.json`` into the run directory: the optimizer steps it trained and why
it stopped.

Example:
    $ POLYGRAFT_TUNE_GATE=g.json POLYGRAFT_TUNE_DECISION=d.json python -m polygraft.tune_child recipe.yaml \\
        trainer.lr=0.01 output_dir=runs/t0
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from polygraft.interfaces import Callback

GATE_ENV, DECISION_ENV, PARENT_ENV = "POLYGRAFT_TUNE_GATE", "POLYGRAFT_TUNE_DECISION", "POLYGRAFT_TUNE_PARENT"
TRIAL_FILE = "tune_trial.json"
WAIT_S = 600.0
"""How long rank 0 waits for a decision before going on alone (the parent died or hangs)."""


def write_json(path: Path, value: Any) -> None:
    """Write ``value`` as JSON atomically (a reader never sees half a file)."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(value))
    os.replace(temporary, path)


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


class PruningGate(Callback):
    """Waits after each validation for the parent's decision (see the module docstring)."""

    state_key = "polygraft-tune-gate"

    def __init__(self, gate: Path, decision: Path, *, parent: int | None = None, wait_s: float = WAIT_S,
                 poll_s: float = 0.01) -> None:
        self.gate, self.decision, self.parent = Path(gate), Path(decision), parent
        self.wait_s, self.poll_s = wait_s, poll_s
        self.validated: int | None = None  # global step of the latest validation not yet judged
        self.steps = 0
        self.signalled = threading.Event()
        self._previous: Any = None

    def on_fit_start(self, trainer: Any) -> None:
        """Note SIGTERM's arrival (the trainer's own handler still records it and stops the fit)."""
        if threading.current_thread() is not threading.main_thread():
            return
        self._previous = signal.getsignal(signal.SIGTERM)

        def noted(number: int, frame: Any) -> None:
            self.signalled.set()
            if callable(self._previous):
                self._previous(number, frame)

        signal.signal(signal.SIGTERM, noted)  # the trainer puts back the handler it replaced when the fit ends

    def on_validation_end(self, trainer: Any, metrics: dict[str, float]) -> None:
        if trainer.stage == "val":
            self.validated = trainer.state.global_step

    def on_train_step_end(self, trainer: Any, step: int, loss: Any, batch: Any, output: Any) -> None:
        self.steps = step

    def on_train_step_start(self, trainer: Any, step: int) -> None:
        if self.validated is None:
            return
        judged, self.validated = self.validated, None
        prune = self._ask(judged) if trainer.dist.is_main else False
        if trainer.dist.enabled:
            prune = trainer.dist.any(prune)  # rank 0 decides for every rank
        if prune:  # the parent sends SIGTERM right after its answer: stop after this step, every rank alike
            deadline = time.monotonic() + self.wait_s
            while not self.signalled.wait(self.poll_s):
                if time.monotonic() > deadline or not self._parent_alive():
                    trainer.request_stop(f"pruned by polygraft tune after the validation at step {judged}")
                    return

    def _ask(self, step: int) -> bool:
        """Rank 0: publish the step waiting for judgement and read the parent's answer."""
        write_json(self.gate, {"step": step})
        deadline = time.monotonic() + self.wait_s
        while time.monotonic() < deadline and self._parent_alive() and not self.signalled.is_set():
            answer = read_json(self.decision)
            if isinstance(answer, dict) and answer.get("step") == step:
                return bool(answer.get("prune"))
            time.sleep(self.poll_s)
        if not self.signalled.is_set():  # SIGTERM while waiting: the search itself is stopping; the trainer stops too
            print(f"polygraft tune did not answer for the validation at step {step}; going on", file=sys.stderr)
        return False

    def _parent_alive(self) -> bool:
        if self.parent is None:
            return True
        try:
            os.kill(self.parent, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True


def main(argv: Sequence[str] | None = None) -> int:
    """``polygraft finetune RECIPE overrides...`` with the pruning gate."""
    argv = list(sys.argv[1:] if argv is None else argv)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from polygraft.errors import PolygraftError

    if not argv:
        print("usage: python -m polygraft.tune_child RECIPE [key=value ...]", file=sys.stderr)
        return 2
    try:
        return _run(argv[0], argv[1:])
    except PolygraftError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _run(recipe_path: str, overrides: list[str]) -> int:
    from polygraft.errors import ConfigError
    from polygraft.recipe import Recipe, run_recipe
    from polygraft.training.signals import EXIT_CODES

    recipe = Recipe.from_yaml(recipe_path, overrides)
    if recipe.task is None:
        raise ConfigError(f"{recipe_path} has no 'task'; polygraft tune fine-tunes tasks")
    recipe.trainer.progress = False
    callbacks: list[Callback] = []
    gate: PruningGate | None = None
    if os.environ.get(GATE_ENV) and os.environ.get(DECISION_ENV):
        parent = os.environ.get(PARENT_ENV)
        gate = PruningGate(Path(os.environ[GATE_ENV]), Path(os.environ[DECISION_ENV]),
                           parent=int(parent) if parent else None)
        callbacks.append(gate)
    result = run_recipe(recipe, callbacks=callbacks)
    if int(os.environ.get("RANK", "0")) == 0 and result.run_dir is not None:
        steps = gate.steps if gate is not None else max((int(r.get("step", 0)) for r in result.history), default=0)
        write_json(Path(result.run_dir) / TRIAL_FILE, {"steps": steps, "stopped": result.stop_reason,
                                                       "interrupted": result.interrupted})
    print(json.dumps({"run_dir": str(result.run_dir), "stopped": result.stop_reason, "metrics": result.metrics}))
    return EXIT_CODES[result.interrupted] if result.interrupted else 0


if __name__ == "__main__":
    sys.exit(main())

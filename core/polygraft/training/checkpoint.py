"""Atomic checkpoints (temp file, fsync, rename) with everything a resume needs; loaded with weights_only=True.

Example:
    >>> import tempfile, pathlib
    >>> from polygraft.training.checkpoint import atomic_save, load_checkpoint
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "c.pt"
    >>> atomic_save({"step": 3}, path)
    >>> load_checkpoint(path)["step"]
    3
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from polygraft.errors import TrainingError


def atomic_save(state: dict[str, Any], path: Path) -> None:
    """Write to a temp file in the same folder, fsync it, then rename over ``path`` (the temp file is removed if
    anything fails, so ``path`` is either the old file or the new one, and nothing else is left)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as handle:
            torch.save(state, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)  # a failed write (a full disk) never leaves its partial file behind
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def load_checkpoint(path: Path) -> dict[str, Any]:
    """A checkpoint written by :func:`atomic_save`; anything else is refused (never unpickled)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt, truncated, or a pickle that is more than weights
        raise TrainingError(
            f"{path}: not a readable polygraft checkpoint ({type(exc).__name__}): it is corrupt, truncated or was not "
            "written by polygraft, and polygraft never loads arbitrary pickled objects. Resume from another "
            "checkpoint, or start without resume."
        ) from None
    if not isinstance(state, dict) or "module" not in state or "trainer" not in state:
        raise TrainingError(f"{path}: not a polygraft checkpoint (no module/trainer state); resume from a last.pt "
                            "written by polygraft, or start without resume")
    return state


def rng_state() -> dict[str, Any]:
    """Python, NumPy and torch RNG states in weights_only-loadable types."""
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "python": _to_lists(random.getstate()),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].copy()), *np_state[2:]],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(_to_tuples(state["python"]))
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.numpy(), *rest))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _to_lists(value: Any) -> Any:
    return [_to_lists(v) for v in value] if isinstance(value, tuple) else value


def _to_tuples(value: Any) -> Any:
    return tuple(_to_tuples(v) for v in value) if isinstance(value, list) else value

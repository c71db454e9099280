"""Specs of the builtin trainer callbacks recipes can name (import-free)."""

from __future__ import annotations

from polygraft.specs import CallbackSpec

CALLBACK_SPECS: list[CallbackSpec] = [
    CallbackSpec(
        name="early-stopping", factory="polygraft.training.builtin_callbacks:create_early_stopping",
        description="Stop when a monitored validation metric stops improving (monitor, mode, patience).",
    ),
]

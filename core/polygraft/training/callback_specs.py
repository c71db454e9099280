"""Specs of the builtin trainer callbacks recipes can name (import-free)."""

from __future__ import annotations

from polygraft.specs import CallbackSpec

CALLBACK_SPECS: list[CallbackSpec] = []

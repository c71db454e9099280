"""Hook implementations of polygraft-speech. Registers specs only; heavy imports happen inside factories."""

from __future__ import annotations

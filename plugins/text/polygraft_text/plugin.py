"""Hook implementations of polygraft-text. Registers specs only; heavy imports happen inside factories."""

from __future__ import annotations

"""Hook implementations of polygraft-vision. Registers specs only; heavy imports happen inside factories."""

from __future__ import annotations

"""Helpers shared by the kit's checks: running one check, describing an exception, comparing outputs.

Example:
    >>> from polygraft.conformance.report import Report
    >>> from polygraft.conformance.steps import Steps
    >>> steps = Steps(Report("demo"), "dataset 'x'")
    >>> steps.run("opens", lambda: 3)
    3
    >>> steps.report.results[0].status
    'ok'
"""

from __future__ import annotations

import json
import traceback
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from polygraft.conformance.report import CheckFailed, Report

T = TypeVar("T")


class Abort(Exception):
    """A check the rest of a component's checks depend on failed; stop checking this component."""


def explain(exc: BaseException) -> str:
    """``TypeError: ... (at my_plugin/backbone.py:42)``: the error and the innermost frame outside the kit."""
    from polygraft.errors import PolygraftError

    if isinstance(exc, CheckFailed):
        return str(exc)
    text = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, PolygraftError):
        return text
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if "/polygraft/conformance/" not in f.filename]
    if frames:
        frame = frames[-1]
        text += f" (at {frame.filename}:{frame.lineno})"
    return text


class Steps:
    """Runs the checks of one component, recording each in the report."""

    def __init__(self, report: Report, component: str) -> None:
        self.report = report
        self.component = component

    def run(self, check: str, function: Callable[[], T], *, required: bool = False, hint: str = "") -> T | None:
        """Run ``function``; a raised exception is recorded as this check's failure (with ``hint`` appended)."""
        try:
            value = function()
        except Abort:
            raise
        except Exception as exc:
            from polygraft.errors import PolygraftError

            message = explain(exc) + (f". {hint}" if hint and isinstance(exc, PolygraftError) else "")
            self.report.fail(self.component, check, message)
            if required:
                raise Abort(check) from exc
            return None
        self.report.ok(self.component, check)
        return value

    def warn(self, check: str, message: str) -> None:
        self.report.warn(self.component, check, message)

    def not_run(self, check: str, message: str) -> None:
        self.report.not_run(self.component, check, message)


def require(condition: bool, message: str) -> None:
    """Raise :class:`CheckFailed` with ``message`` (what is wrong and what to do) unless ``condition``."""
    if not condition:
        raise CheckFailed(message)


def non_json(value: Any, path: str = "") -> list[str]:
    """Where ``value`` holds something JSON cannot store: ``["mean (Tensor)"]``."""
    if isinstance(value, Mapping):
        found = []
        for key, item in value.items():
            if not isinstance(key, str):
                found.append(f"{path}{key!r} (a {type(key).__name__} key)")
            found.extend(non_json(item, f"{path}{key}."))
        return found
    if isinstance(value, list | tuple):
        return [bad for index, item in enumerate(value) for bad in non_json(item, f"{path}{index}.")]
    if value is None or isinstance(value, str | bool | int):
        return []
    if isinstance(value, float):
        return [] if value == value and abs(value) != float("inf") else [f"{path.rstrip('.')} (non-finite float)"]
    return [f"{path.rstrip('.') or 'value'} ({type(value).__name__})"]


def tensors(value: Any, path: str = "") -> dict[str, Any]:
    """Every tensor inside nested mappings/lists, by path."""
    import torch

    if isinstance(value, torch.Tensor):
        return {path or "value": value}
    found: dict[str, Any] = {}
    if isinstance(value, Mapping):
        for key, item in value.items():
            found.update(tensors(item, f"{path}.{key}" if path else str(key)))
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            found.update(tensors(item, f"{path}[{index}]"))
    return found


def differences(first: Any, second: Any, *, atol: float = 1e-5, rtol: float = 1e-4) -> list[str]:
    """Paths where two nested outputs differ (shapes, values beyond tolerance, or plain values)."""
    import torch

    a, b = tensors(first), tensors(second)
    found = [f"{key} (only in one)" for key in sorted(set(a) ^ set(b))]
    for key in sorted(set(a) & set(b)):
        x, y = a[key], b[key]
        if x.shape != y.shape:
            found.append(f"{key} (shape {tuple(x.shape)} vs {tuple(y.shape)})")
        elif x.is_floating_point() or y.is_floating_point():
            if not torch.allclose(x.float(), y.float(), atol=atol, rtol=rtol, equal_nan=True):
                found.append(f"{key} (max difference {float((x.float() - y.float()).abs().max()):.3g})")
        elif not torch.equal(x, y):
            found.append(f"{key} (values differ)")
    if not a and not b:
        try:
            same = json.dumps(first, sort_keys=True, default=str) == json.dumps(second, sort_keys=True, default=str)
        except (TypeError, ValueError):
            same = first == second
        if not same:
            found.append("value")
    return found


def finite_problems(value: Any) -> list[str]:
    """Paths of floating tensors holding NaN or infinity."""
    import torch

    return [key for key, tensor in tensors(value).items()
            if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all())]

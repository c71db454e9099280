"""The conformance kit's report: one line per check, and the error raised when something failed.

Example:
    >>> from polygraft.conformance.report import Report
    >>> report = Report("my-plugin")
    >>> report.ok("backbone 'mlp'", "features")
    >>> report.fail("backbone 'mlp'", "batch size", "pooled has 1 rows for 2 examples")
    >>> len(report.failures)
    1
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

OK, FAILED, NOT_RUN, SKIPPED, WARNING = "ok", "failed", "not run", "skipped", "warning"


class CheckFailed(AssertionError):
    """A conformance check failed; the message says what to fix (an AssertionError, so pytest shows it plainly)."""


@dataclass
class Result:
    """One check of one component."""

    component: str  # "backbone 'mlp'"
    check: str  # "batch size"
    status: str
    message: str = ""

    def line(self) -> str:
        text = f"[{self.status}] {self.component}: {self.check}"
        return f"{text}: {self.message}" if self.message else text


@dataclass
class Report:
    """Everything :func:`polygraft.testing.check_plugin` found, printable and queryable."""

    plugin: str
    results: list[Result] = field(default_factory=list)

    def ok(self, component: str, check: str, message: str = "") -> None:
        self.results.append(Result(component, check, OK, message))

    def fail(self, component: str, check: str, message: str) -> None:
        self.results.append(Result(component, check, FAILED, message))

    def not_run(self, component: str, check: str, message: str) -> None:
        self.results.append(Result(component, check, NOT_RUN, message))

    def skipped(self, component: str, reason: str) -> None:
        self.results.append(Result(component, "all checks", SKIPPED, f"skipped on request: {reason}"))

    def warn(self, component: str, check: str, message: str) -> None:
        self.results.append(Result(component, check, WARNING, message))

    def _with(self, status: str) -> list[Result]:
        return [result for result in self.results if result.status == status]

    @property
    def failures(self) -> list[Result]:
        return self._with(FAILED)

    @property
    def not_run_results(self) -> list[Result]:
        return self._with(NOT_RUN)

    @property
    def warnings(self) -> list[Result]:
        return self._with(WARNING)

    @property
    def passed(self) -> bool:
        """No failure and nothing left unrun (components skipped on request are fine)."""
        return not self.failures and not self.not_run_results

    def components(self) -> list[str]:
        return list(dict.fromkeys(result.component for result in self.results))

    def summary(self) -> str:
        counts = {status: len(self._with(status)) for status in (OK, FAILED, NOT_RUN, SKIPPED, WARNING)}
        shown = ", ".join(f"{n} {status}" for status, n in counts.items() if n)
        return f"conformance of {self.plugin}: {len(self.components())} components, {shown}"

    def __str__(self) -> str:
        important = [r for r in self.results if r.status != OK]
        return "\n".join([self.summary(), *(result.line() for result in important)])

    def to_dict(self) -> dict[str, Any]:
        return {"plugin": self.plugin, "passed": self.passed,
                "results": [vars(result).copy() for result in self.results]}

    def raise_for_failures(self) -> None:
        """Raise :class:`CheckFailed` listing every failure and every check that could not run."""
        if self.passed:
            return
        problems = [*self.failures, *self.not_run_results]
        lines = [self.summary(), *(result.line() for result in problems)]
        if self.not_run_results:
            lines.append("Checks that could not run fail the kit: pass the options or examples they need, or "
                         "skip={'<kind>:<name>': 'why'} to exclude a component on purpose.")
        raise CheckFailed("\n".join(lines))


def component_key(kind: str, name: str) -> str:
    return f"{kind}:{name}"


def lookup(table: Mapping[str, Any] | None, kind: str, name: str, default: Any = None) -> Any:
    """``table["kind:name"]``, else ``table["name"]``, else ``default`` (how the kit's keyword tables are keyed)."""
    if not table:
        return default
    bare = name.rpartition(":")[2]  # a qualified name (owner:name) finds the entries of its bare name too
    for key in dict.fromkeys((component_key(kind, name), name, component_key(kind, bare), bare)):
        if key in table:
            return table[key]
    return default

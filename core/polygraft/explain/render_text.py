"""The HTML page of a text explanation: one row per explained output, every word highlighted by its score.

A self-contained page (no scripts, no network): green words raise the explained output, red words lower it, the
colour's strength is the score relative to the row's largest. Hovering a word shows its score.

Example:
    >>> from polygraft.explain.render_text import word_style
    >>> word_style(0.5, 1.0)
    'background: rgba(26, 152, 80, 0.50)'
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from polygraft.explain.api import Attribution, Explanation

POSITIVE, NEGATIVE = (26, 152, 80), (215, 48, 39)


def word_style(score: float, largest: float) -> str:
    strength = min(1.0, abs(score) / largest) if largest > 0 else 0.0
    red, green, blue = POSITIVE if score >= 0 else NEGATIVE
    return f"background: rgba({red}, {green}, {blue}, {strength:.2f})"


def _completeness(attribution: Attribution) -> str:
    report = attribution.completeness
    if not report:
        return ""
    mark = "within" if report["within_tolerance"] else "NOT within"
    return (f"completeness: attributions sum to {report['f_input'] - report['f_baseline'] + report['delta']:.4f}, "
            f"f(x) − f(baseline) = {report['gap']:.4f} (relative delta {report['relative_delta']:.3f}, {mark} "
            f"{report['tolerance']:.0%}; {report['steps']} steps)")


def _row(attribution: Attribution) -> str:
    words = attribution.units or []
    largest = float(np.abs(attribution.scores).max()) if attribution.scores.size else 0.0
    spans = " ".join(f'<span class="w" style="{word_style(float(s), largest)}" title="{float(s):+.4f}">'
                     f"{html.escape(word)}</span>" for word, s in zip(words, attribution.scores))
    notes = "".join(f'<div class="note">{html.escape(n)}</div>' for n in attribution.notes)
    return (f'<tr><th>{html.escape(attribution.target)}</th><td><div class="text">{spans}</div>'
            f'<div class="meta">{html.escape(_completeness(attribution))} · {attribution.seconds:.2f} s</div>'
            f"{notes}</td></tr>")


def write_html(explanation: Explanation, path: Path) -> Path:
    prediction = explanation.prediction
    shown = prediction.get("label") or ", ".join(prediction.get("tags", [])[:20]) or prediction.get("transcript", "")
    rows = "\n".join(_row(a) for a in explanation.attributions)
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>polygraft explain</title>
<style>
body {{ font: 15px/1.5 system-ui, sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; }} th {{ text-align: left; vertical-align: top; padding: .4em 1em .4em 0;
white-space: nowrap; }} td {{ padding: .4em 0; border-top: 1px solid #eee; }}
.w {{ padding: 1px 3px; border-radius: 3px; }} .meta, .legend {{ color: #666; font-size: 12px; }}
.note {{ color: #a50; font-size: 12px; }}
</style></head><body>
<h1>Why “{html.escape(str(shown))}”?</h1>
<p>Input: <q>{html.escape(explanation.input)}</q> · method: <b>{html.escape(explanation.method)}</b></p>
<p class="legend"><span class="w" style="{word_style(1, 1)}">raises</span>
<span class="w" style="{word_style(-1, 1)}">lowers</span> the explained output; hover a word for its score.</p>
<table>
{rows}
</table></body></html>
"""
    path.write_text(page, encoding="utf-8")
    return path

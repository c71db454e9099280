"""SQuAD exact match and F1, as the official evaluation scripts compute them (v1.1 and v2.0).

Answers are normalised as the official scripts do: lower case, punctuation removed (``string.punctuation``), the
articles *a*, *an*, *the* removed as whole words, whitespace collapsed. Exact match is 1 when the normalised
prediction equals a normalised gold answer; F1 is the harmonic mean of token precision and recall over the
normalised words (multiset overlap). A question's score is its best over all gold answers.

Unanswerable questions (SQuAD v2.0) follow the v2.0 script: gold answers that normalise to nothing are dropped, a
question with no gold answer left has the single gold answer ``""``, and when either side has no tokens F1 is 1
if both are empty, else 0. For answerable questions whose gold answers all have words this is the v1.1 script's
score exactly, so one implementation serves both versions.

:class:`SquadScores` accumulates questions and reports the fractions (0–1, where the scripts print percentages):
``exact`` and ``f1`` over all questions, ``has_answer_*`` / ``no_answer_*`` splits when any question is
unanswerable, and the v2.0 script's best no-answer threshold (``best_f1``, ``best_f1_threshold``...) found on the
questions' *no-answer margins* (null score minus the best span score): predict "no answer" when the margin exceeds
the threshold.

Example:
    >>> from polygraft.tasks.squad_metrics import exact_match, f1_score, normalize_answer
    >>> normalize_answer("The  Eiffel-Tower!")
    'eiffeltower'
    >>> exact_match("the Eiffel Tower", ["Eiffel Tower", "Paris"]), round(f1_score("Eiffel", ["Eiffel Tower"]), 3)
    (1.0, 0.667)
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCTUATION = frozenset(string.punctuation)


def normalize_answer(text: str) -> str:
    """Lower case, no punctuation, no articles, single spaces (the official SQuAD normalisation)."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def _tokens(text: str) -> list[str]:
    return normalize_answer(text).split() if text else []


def gold_answers(answers: Sequence[str]) -> list[str]:
    """Gold answers as the v2.0 script keeps them: those that normalise to something, else ``[""]``."""
    kept = [answer for answer in answers if normalize_answer(answer)]
    return kept or [""]


def _exact(prediction: str, gold: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(gold))


def _f1(prediction: str, gold: str) -> float:
    predicted, wanted = _tokens(prediction), _tokens(gold)
    if not predicted or not wanted:
        return float(predicted == wanted)
    common = sum((Counter(predicted) & Counter(wanted)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(predicted), common / len(wanted)
    return 2 * precision * recall / (precision + recall)


def exact_match(prediction: str, answers: Sequence[str]) -> float:
    """1.0 when the normalised prediction equals one of the (kept) gold answers, else 0.0."""
    return max(_exact(prediction, gold) for gold in gold_answers(answers))


def f1_score(prediction: str, answers: Sequence[str]) -> float:
    """Best token F1 of the prediction against the (kept) gold answers."""
    return max(_f1(prediction, gold) for gold in gold_answers(answers))


@dataclass
class QuestionScore:
    """One question: its gold answers, the best span's text, and the no-answer margin (null − best span score).

    ``predicted`` is what the model answered under the task's threshold (``""`` for no answer)."""

    answers: list[str]
    span_text: str
    predicted: str
    margin: float = float("-inf")

    @property
    def answerable(self) -> bool:
        return gold_answers(self.answers) != [""]


@dataclass
class SquadScores:
    """Questions seen so far; :meth:`compute` gives the official aggregate scores as fractions."""

    questions: list[QuestionScore] = field(default_factory=list)

    def add(self, answers: Sequence[str], span_text: str, predicted: str, margin: float = float("-inf")) -> None:
        self.questions.append(QuestionScore(list(answers), span_text, predicted, float(margin)))

    def extend(self, other: Sequence[QuestionScore]) -> None:
        self.questions.extend(other)

    def compute(self) -> dict[str, float]:
        """``exact``, ``f1`` (and with unanswerable questions: has/no-answer splits and the best threshold)."""
        rows = self.questions
        if not rows:
            return {}
        exact = [exact_match(q.predicted, q.answers) for q in rows]
        f1 = [f1_score(q.predicted, q.answers) for q in rows]
        metrics = {"exact": sum(exact) / len(rows), "f1": sum(f1) / len(rows), "questions": float(len(rows))}
        has = [i for i, q in enumerate(rows) if q.answerable]
        if len(has) == len(rows):
            return metrics
        no = [i for i, q in enumerate(rows) if not q.answerable]
        for name, part in (("has_answer", has), ("no_answer", no)):
            if part:
                metrics[f"{name}_exact"] = sum(exact[i] for i in part) / len(part)
                metrics[f"{name}_f1"] = sum(f1[i] for i in part) / len(part)
            metrics[f"{name}_questions"] = float(len(part))
        for name, scorer in (("exact", exact_match), ("f1", f1_score)):
            best, threshold = best_threshold(rows, scorer)
            metrics[f"best_{name}"], metrics[f"best_{name}_threshold"] = best, threshold
        return metrics


def best_threshold(rows: Sequence[QuestionScore], scorer: object) -> tuple[float, float]:
    """The v2.0 script's ``find_best_thresh`` on no-answer margins: the score reached when every question whose
    margin exceeds the threshold is answered "no answer" and the others with their best span, at the best
    threshold (ties: the lowest margin reached first, as the script)."""
    score_of = scorer  # exact_match or f1_score
    current = float(sum(1 for q in rows if not q.answerable))
    best, threshold = current, 0.0
    for q in sorted(rows, key=lambda q: q.margin):
        if q.answerable:
            current += score_of(q.span_text, q.answers)  # type: ignore[operator]
        elif q.span_text:
            current -= 1.0
        if current > best:
            best, threshold = current, q.margin
    return best / len(rows), threshold

"""``squad-json``: question answering data in the SQuAD file layout (v1.1 and v2.0).

The layout is ``{"version": ..., "data": [{"title": ..., "paragraphs": [{"context": str, "qas": [{"id": str,
"question": str, "answers": [{"text": str, "answer_start": int}, ...], "is_impossible": bool}]}]}]}``; examples
are ``{"id", "question", "context", "answers", "title", "_origin"}`` with ``_origin`` naming the file and the
question id. SQuAD v2.0's unanswerable questions (``is_impossible: true``, ``answers: []``) are kept with empty
answers (train them with the task's ``allow_no_answer: true``).

Every problem is a :class:`~polygraft.errors.DataError` naming the file and the question id (or the article and
paragraph when the question has no id): an answer span outside its context, an answer text that differs from the
context at ``answer_start``, a missing or empty question, context or id, a question id used twice, an answerable
question without answers, an unanswerable one with answers. With ``skip_invalid: true`` such questions (and
paragraphs without a usable context) are skipped and counted in the skip report instead. JSON that cannot be parsed
names its line.

Example:
    >>> import json, tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "tiny.json"
    >>> qa = {"id": "q1", "question": "Who sat?", "answers": [{"text": "Ada", "answer_start": 0}]}
    >>> _ = path.write_text(json.dumps({"data": [{"title": "t", "paragraphs": [
    ...     {"context": "Ada sat.", "qas": [qa]}]}]}))
    >>> source = SquadJsonSource(path)
    >>> source[0]["answers"], source[0]["_origin"].endswith("tiny.json#q1")
    ([{'text': 'Ada', 'answer_start': 0}], True)
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from polygraft.errors import DataError
from polygraft.interfaces.datasource import InMemorySource, files_fingerprint
from polygraft_text.datasets.reading import encoding_message, has_undecodable, read_text


class SquadJsonSource(InMemorySource):
    """Questions of a SQuAD-layout JSON file, one example per question, in file order."""

    def __init__(self, path: str | Path, *, skip_invalid: bool = False, encoding: str = "utf-8",
                 limit: int | None = None, split: str | None = None) -> None:
        super().__init__()
        self.path = Path(path)
        self.name = self.path.name
        self.label_names = None
        self._skip_invalid = skip_invalid
        self._ids: set[str] = set()
        self._settings = {"skip_invalid": skip_invalid, "encoding": encoding, "limit": limit}
        self.examples = []
        self.version = ""
        self._read(read_text(self.path, encoding))
        if not self.examples:
            raise DataError("no usable questions" + (f" (skipped: {dict(self.skipped)})" if self.skipped else ""),
                            path=self.path)
        if limit is not None:
            self.examples = self.examples[: int(limit)]

    @property
    def unanswerable(self) -> int:
        """How many questions have no answer (SQuAD v2.0 style)."""
        return sum(1 for example in self.examples if not example["answers"])

    def fingerprint(self) -> str | None:
        return files_fingerprint({"reader": "squad-json", **self._settings}, [(self.path, None)])

    def _invalid(self, reason: str, message: str, where: str) -> None:
        if not self._skip_invalid:
            raise DataError(f"{where}: {message}", path=self.path)
        self.skip(reason, f"{self.path} ({where})")

    def _read(self, text: str) -> None:
        if has_undecodable(text):
            raise DataError(encoding_message(), path=self.path)
        try:
            document = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataError(f"not valid JSON ({exc.msg} at column {exc.colno})", path=self.path,
                            line=exc.lineno) from None
        articles = document.get("data") if isinstance(document, Mapping) else None
        if not isinstance(articles, list):
            raise DataError("expected the SQuAD layout {\"data\": [{\"title\", \"paragraphs\": [{\"context\", "
                            "\"qas\": [...]}]}]}; the file has no 'data' list", path=self.path)
        self.version = str(document.get("version", ""))
        for a, article in enumerate(articles):
            paragraphs = article.get("paragraphs") if isinstance(article, Mapping) else None
            title = str(article.get("title", "")) if isinstance(article, Mapping) else ""
            if not isinstance(paragraphs, list):
                self._invalid("no paragraphs", "an article needs a 'paragraphs' list", f"data[{a}]")
                continue
            for p, paragraph in enumerate(paragraphs):
                self._paragraph(paragraph, title, f"data[{a}].paragraphs[{p}]")

    def _paragraph(self, paragraph: Any, title: str, where: str) -> None:
        context = paragraph.get("context") if isinstance(paragraph, Mapping) else None
        questions = paragraph.get("qas", []) if isinstance(paragraph, Mapping) else None
        if not isinstance(context, str) or not context.strip():
            self._invalid("empty context", "a paragraph needs a non-empty 'context' text", where)
            return
        if not isinstance(questions, list):
            self._invalid("no questions", "'qas' must be a list of questions", where)
            return
        for q, qa in enumerate(questions):
            qid = qa.get("id") if isinstance(qa, Mapping) else None
            label = f"question {qid!r}" if isinstance(qid, str) and qid else f"{where}.qas[{q}]"
            problem = self._problem(qa, context, qid)
            if problem is not None:
                self._invalid(problem[0], problem[1], label)
                continue
            self._ids.add(qid)
            answers = [{"text": a["text"], "answer_start": a["answer_start"]} for a in qa.get("answers", [])]
            self.examples.append({"id": qid, "question": qa["question"], "context": context, "answers": answers,
                                  "title": title, "_origin": f"{self.path}#{qid}"})

    def _problem(self, qa: Any, context: str, qid: Any) -> tuple[str, str] | None:
        """``(reason, message)`` of what is wrong with one question, or ``None``."""
        if not isinstance(qa, Mapping):
            return "not a question", f"expected a question object, got {type(qa).__name__}"
        if not isinstance(qid, str) or not qid:
            return "missing id", "a question needs a non-empty string 'id'"
        if qid in self._ids:
            return "duplicate id", "this question id is used twice; ids must be unique"
        question = qa.get("question")
        if not isinstance(question, str) or not question.strip():
            return "empty question", "'question' must be a non-empty text"
        answers = qa.get("answers", [])
        if not isinstance(answers, list):
            return "bad answers", "'answers' must be a list of {text, answer_start}"
        impossible = bool(qa.get("is_impossible", False))
        if impossible and answers:
            return "unanswerable with answers", ("is_impossible is true but answers are given; SQuAD v2.0 keeps "
                                                 "those under 'plausible_answers'")
        if not impossible and not answers:
            return "no answers", "no answers; give one, or mark the question is_impossible: true (SQuAD v2.0)"
        for answer in answers:
            problem = _answer_problem(answer, context)
            if problem is not None:
                return problem
        return None


def _answer_problem(answer: Any, context: str) -> tuple[str, str] | None:
    if not isinstance(answer, Mapping):
        return "bad answers", f"an answer must be {{text, answer_start}}, got {answer!r}"
    text, start = answer.get("text"), answer.get("answer_start")
    if not isinstance(text, str) or not text or not isinstance(start, int) or isinstance(start, bool):
        return "bad answers", f"an answer needs a non-empty 'text' and an integer 'answer_start', got {dict(answer)!r}"
    if start < 0 or start + len(text) > len(context):
        return "answer outside context", (f"answer {text!r} at answer_start {start} lies outside its context "
                                          f"({len(context)} characters)")
    if context[start:start + len(text)] != text:
        return "answer text mismatch", (f"answer {text!r} does not match the context at answer_start {start} "
                                        f"(the context has {context[start:start + len(text)]!r} there)")
    return None

"""Datasets ``squad-json`` (the SQuAD layout, bad input named by file and question id) and ``synthetic-bios``
(generated, cached, with people, answers and phrasings of val/test disjoint from training)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import polygraft
from polygraft.errors import ConfigError, DataError
from polygraft_text.datasets import bios_vocab as vocab
from polygraft_text.datasets.bios import create_synthetic_bios, split_pool
from polygraft_text.datasets.squad import SquadJsonSource

CONTEXT = "Ada Brandt was born in Lisbon. Hugo Marsh plays the cello."


def squad_file(tmp_path: Path, *qas: dict, name: str = "qa.json", context: str = CONTEXT) -> Path:
    path = tmp_path / name
    path.write_text(json.dumps({"version": "v2.0", "data": [{"title": "people", "paragraphs": [
        {"context": context, "qas": list(qas)}]}]}, indent=1))
    return path


def qa(qid: str, answer: str | None = "Lisbon", start: int | None = None, **extra) -> dict:
    answers = [] if answer is None else [{"text": answer, "answer_start": CONTEXT.find(answer) if start is None
                                          else start}]
    return {"id": qid, "question": "Where was Ada born?", "answers": answers, **extra}


def test_reads_the_squad_layout_with_unanswerable_questions(tmp_path: Path) -> None:
    source = SquadJsonSource(squad_file(tmp_path, qa("q1"), qa("q2", None, is_impossible=True)))
    assert len(source) == 2 and source.unanswerable == 1 and source.version == "v2.0"
    first = source[0]
    assert first["context"][first["answers"][0]["answer_start"]:].startswith("Lisbon")
    assert first["_origin"].endswith("qa.json#q1") and first["title"] == "people"
    assert source.fingerprint() == SquadJsonSource(tmp_path / "qa.json").fingerprint()


@pytest.mark.parametrize(("bad", "reason", "message"), [
    (qa("q7", "Lisbon", start=55), "answer outside context", "'q7'.*outside its context"),
    (qa("q7", "Lisbon", start=3), "answer text mismatch", "'q7'.*does not match the context"),
    (qa("q7", None), "no answers", "'q7'.*is_impossible"),
    (qa("q7", "Lisbon", is_impossible=True), "unanswerable with answers", "'q7'.*plausible_answers"),
    ({**qa("q7"), "question": " "}, "empty question", "'q7'.*'question'"),
    ({**qa("q7"), "id": ""}, "missing id", r"qas\[1\].*'id'"),
    (qa("q1"), "duplicate id", "'q1'.*used twice"),
    ({**qa("q7"), "answers": [{"text": "Lisbon"}]}, "bad answers", "'q7'.*answer_start"),
])
def test_bad_questions_name_file_and_question_id_or_are_counted(tmp_path: Path, bad: dict, reason: str,
                                                                message: str) -> None:
    path = squad_file(tmp_path, qa("q1"), bad)
    with pytest.raises(DataError, match=rf"qa\.json: .*{message}"):
        SquadJsonSource(path)
    source = SquadJsonSource(path, skip_invalid=True)
    assert len(source) == 1 and source.skipped == {reason: 1}
    assert "qa.json" in source.skip_report()["reasons"][reason]["first"][0]


def test_broken_files_are_clear_errors(tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text('{"data": [\n  {"title": "x",\n   "paragraphs": [}\n]}')
    with pytest.raises(DataError, match=r"broken\.json:3: not valid JSON"):
        SquadJsonSource(broken)
    (tmp_path / "flat.json").write_text(json.dumps([{"question": "q"}]))
    with pytest.raises(DataError, match="SQuAD layout"):
        SquadJsonSource(tmp_path / "flat.json")
    with pytest.raises(DataError, match="non-empty 'context'"):
        SquadJsonSource(squad_file(tmp_path, qa("q1"), context=""))
    only_bad = squad_file(tmp_path, qa("q1", "Lisbon", start=99))
    with pytest.raises(DataError, match="no usable questions"):
        SquadJsonSource(only_bad, skip_invalid=True)


def test_registered_reader_takes_a_path(tmp_path: Path, catalog) -> None:
    source = polygraft.load_dataset("squad-json", path=str(squad_file(tmp_path, qa("q1"))), catalog=catalog)
    assert source[0]["answers"][0]["text"] == "Lisbon"


@pytest.fixture(scope="module")
def bios(tmp_path_factory: pytest.TempPathFactory) -> dict[str, SquadJsonSource]:
    cache = str(tmp_path_factory.mktemp("bios"))
    options = {"train_contexts": 60, "val_contexts": 20, "test_contexts": 20, "cache_dir": cache}
    return {split: create_synthetic_bios(split=split, **options) for split in ("train", "val", "test")}


def _pattern(template: str) -> re.Pattern[str]:
    fields = {"{name}": r"[A-Z][a-z]+(?: [A-Z][a-z]+)?", "{pet}": "(?:" + "|".join(vocab.PETS) + ")"}
    parts = re.split(r"(\{name\}|\{pet\})", template)
    return re.compile("^" + "".join(fields.get(p, re.escape(p)) for p in parts) + "$")


def test_generated_splits_share_no_people_answers_or_phrasings(bios: dict[str, SquadJsonSource]) -> None:
    cut = vocab.TRAIN_TEMPLATES
    for split, source in bios.items():
        pools = {name: set(split_pool(pool, 0, name)[split])
                 for name, pool in {"first": vocab.FIRST_NAMES, **vocab.POOLS}.items()}
        allowed = [_pattern(t) for rows in vocab.QUESTIONS.values() for t in (rows[:cut] if split == "train"
                                                                              else rows[cut:])]
        others = [_pattern(t) for rows in vocab.QUESTIONS.values() for t in (rows[cut:] if split == "train"
                                                                             else rows[:cut])]
        answer_pool = set().union(*(pools[attr] for attr in vocab.POOLS))
        for example in source:
            answer = example["answers"][0]["text"]
            assert answer.split()[0] in answer_pool, (split, answer)
            assert any(p.match(example["question"]) for p in allowed)
            assert not any(p.match(example["question"]) for p in others)
            assert any(name in example["question"] for name in pools["first"])
    train_answers = {e["answers"][0]["text"].split()[0] for e in bios["train"]}
    test_answers = {e["answers"][0]["text"].split()[0] for e in bios["test"]}
    assert not train_answers & test_answers


def test_answers_are_located_among_distractors_of_the_same_kind(bios: dict[str, SquadJsonSource]) -> None:
    example = bios["test"][0]
    answer = example["answers"][0]
    assert example["context"][answer["answer_start"]:].startswith(answer["text"])
    people = {m for m in re.findall(r"[A-Z][a-z]+ [A-Z][a-z]+", example["context"])
              if m.split()[0] in vocab.FIRST_NAMES}
    assert len(people) >= 2  # the asked-about person and at least one distractor


def test_generated_set_is_cached_and_deterministic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POLYGRAFT_CACHE", str(tmp_path))
    first = create_synthetic_bios(split="val", train_contexts=5, val_contexts=3, test_contexts=3)
    files = sorted((tmp_path / "synthetic-bios").glob("*/val.json"))
    assert len(files) == 1
    stamp = files[0].stat().st_mtime_ns
    again = create_synthetic_bios(split="val", train_contexts=5, val_contexts=3, test_contexts=3)
    assert files[0].stat().st_mtime_ns == stamp and again.examples == first.examples
    assert json.loads((files[0].parent / "info.json").read_text())["splits"]["val"]["contexts"] == 3
    other = create_synthetic_bios(split="val", train_contexts=5, val_contexts=3, test_contexts=3, seed=1)
    assert other.examples != first.examples
    assert len(create_synthetic_bios(split="all", train_contexts=5, val_contexts=3, test_contexts=3)) == 33


def test_unanswerable_questions_are_generated_on_request(tmp_path: Path) -> None:
    source = create_synthetic_bios(split="train", train_contexts=40, val_contexts=2, test_contexts=2,
                                   unanswerable=0.5, cache_dir=str(tmp_path))
    share = source.unanswerable / len(source)
    assert 0.3 < share < 0.7
    with pytest.raises(ConfigError, match="people"):
        create_synthetic_bios(people=9, cache_dir=str(tmp_path))
    with pytest.raises(ConfigError, match="split"):
        create_synthetic_bios(split="dev", cache_dir=str(tmp_path))

"""``synthetic-bios``: a generated, offline extractive question answering set (short biographies).

Each context describes a few people (``people``, default 3) with a few facts each: birth city, birth year, job,
employer, instrument, the name of a pet. Every question asks about *one* of them, and the others are distractors
stating facts of the same kinds ("Tara Novak was born in Lisbon. ... Hugo Marsh was born in Oslo."), so the answer
must be located from the name, not read off a pattern. Some phrasings collide on purpose ("born in 1962" and
"born in Lisbon").

**Disjoint splits.** Every entity pool (first names, surnames, cities, jobs, employers, instruments, pet names,
years) is shuffled with ``seed`` and split 60/20/20, so the people and answers of val and test never appear in
training; training uses the first three sentence and question templates of every fact, val and test the other
three (paraphrases it never saw). With ``unanswerable > 0`` that fraction of questions asks for a fact the context
does not state for that person (often stated for a distractor): SQuAD v2.0 style, for ``allow_no_answer``.

Built on first use as SQuAD-layout JSON files (``train.json``, ``val.json``, ``test.json`` and ``info.json``) in
``cache_dir("synthetic-bios", <hash of the options>)`` (``$POLYGRAFT_CACHE``, else ``~/.cache/polygraft``) and read
back with the ``squad-json`` reader; later opens read the cache.

Example:
    >>> import tempfile
    >>> source = create_synthetic_bios(split="test", train_contexts=4, val_contexts=2, test_contexts=2,
    ...                                cache_dir=tempfile.mkdtemp())
    >>> len(source), sorted(source[0])
    (6, ['_origin', 'answers', 'context', 'id', 'question', 'title'])
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from polygraft.assets import cache_dir as polygraft_cache_dir
from polygraft.errors import ConfigError
from polygraft_text.datasets import bios_vocab as vocab
from polygraft_text.datasets.squad import SquadJsonSource

FORMAT_VERSION = 1
PARTS = ("train", "val", "test")
SPLITS = (*PARTS, "all")
SHARES = (0.6, 0.2, 0.2)
POOL_NAMES = ("first", "surname", *vocab.POOLS)


def split_pool(pool: Sequence[str], seed: int, salt: str) -> dict[str, list[str]]:
    """``pool`` shuffled with ``seed`` and cut 60/20/20 into train, val and test (disjoint, deterministic)."""
    order = list(pool)
    random.Random(f"{seed}/{salt}").shuffle(order)
    first = round(len(order) * SHARES[0])
    second = first + round(len(order) * SHARES[1])
    return {"train": order[:first], "val": order[first:second], "test": order[second:]}


def _pools(seed: int) -> dict[str, dict[str, list[str]]]:
    named = {"first": vocab.FIRST_NAMES, "surname": vocab.SURNAMES, **vocab.POOLS}
    return {name: split_pool(pool, seed, name) for name, pool in named.items()}


def _templates(part: str, table: Mapping[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
    cut = vocab.TRAIN_TEMPLATES
    return {attr: (rows[:cut] if part == "train" else rows[cut:]) for attr, rows in table.items()}


class _Writer:
    """Sentences joined into one context, remembering where each fact's answer starts."""

    def __init__(self) -> None:
        self.text = ""
        self.answers: dict[tuple[str, str], tuple[str, int]] = {}

    def add(self, template: str, fields: dict[str, str], key: tuple[str, str] | None = None) -> None:
        if self.text:
            self.text += " "
        sentence = template.format(**fields)
        if key is not None:
            before = template.split("{value}")[0].format(**fields)
            sentence = sentence[0].upper() + sentence[1:]
            answer = sentence[len(before):len(before) + len(fields["value"])]
            self.answers[key] = (answer, len(self.text) + len(before))
        self.text += sentence


def _paragraph(rng: random.Random, pools: dict[str, list[str]], part: str, article: int, *, people: int,
               facts: tuple[int, int], fillers: int, questions: int, unanswerable: float) -> dict[str, Any]:
    sentences, asks = _templates(part, vocab.SENTENCES), _templates(part, vocab.QUESTIONS)
    firsts, surnames = rng.sample(pools["first"], people), rng.sample(pools["surname"], people)
    names = [f"{f} {s}" for f, s in zip(firsts, surnames, strict=True)]
    values = {attr: rng.sample(pools[attr], people) for attr in vocab.POOLS}
    kinds = rng.sample(vocab.EMPLOYER_KINDS, people)
    pets = [rng.choice(vocab.PETS) for _ in range(people)]
    stated = {name: rng.sample(list(vocab.POOLS), rng.randint(*facts)) for name in names}
    writer, order = _Writer(), list(range(people))
    rng.shuffle(order)
    filler_at = set(rng.sample(range(people + 1), min(fillers, people + 1)))
    for position, who in enumerate(order):
        if position in filler_at:
            writer.add(rng.choice(vocab.FILLERS), {})
        name = names[who]
        for attr in stated[name]:
            value = values[attr][who] + (f" {kinds[who]}" if attr == "employer" else "")
            fields = {"name": name if rng.random() < 0.7 else firsts[who], "value": value, "pet": pets[who],
                      "a": "an" if value[0].lower() in "aeiou" else "a"}
            writer.add(rng.choice(sentences[attr]), fields, key=(name, attr))
    if people in filler_at:
        writer.add(rng.choice(vocab.FILLERS), {})
    known = list(writer.answers)
    missing = [(n, attr) for n in names for attr in vocab.POOLS if (n, attr) not in writer.answers]
    qas = []
    for q in range(questions):
        if missing and rng.random() < unanswerable:
            name, attr = missing.pop(rng.randrange(len(missing)))
            answers: list[dict[str, Any]] = []
        else:
            name, attr = known.pop(rng.randrange(len(known)))
            text, start = writer.answers[(name, attr)]
            answers = [{"text": text, "answer_start": start}]
        who = names.index(name)
        question = rng.choice(asks[attr]).format(name=name if rng.random() < 0.7 else firsts[who], pet=pets[who])
        qas.append({"id": f"{part}-{article}-{q}", "question": question, "answers": answers,
                    "is_impossible": not answers})
        if not known:
            break
    return {"context": writer.text, "qas": qas}


def generate_split(part: str, contexts: int, *, seed: int, people: int, facts: tuple[int, int], fillers: int,
                   questions: int, unanswerable: float) -> dict[str, Any]:
    """One split as a SQuAD-layout document (deterministic in every argument)."""
    pools = {name: split[part] for name, split in _pools(seed).items()}
    rng = random.Random(f"{seed}/{part}")
    data = [{"title": f"{part} biography {article}",
             "paragraphs": [_paragraph(rng, pools, part, article, people=people, facts=facts, fillers=fillers,
                                       questions=questions, unanswerable=unanswerable)]}
            for article in range(contexts)]
    return {"version": f"synthetic-bios-{FORMAT_VERSION}", "data": data}


def _write_json(path: Path, document: Any) -> None:
    temporary = path.with_suffix(f".tmp{os.getpid()}")
    temporary.write_text(json.dumps(document, indent=1, ensure_ascii=False), encoding="utf-8")
    temporary.replace(path)  # atomic: a concurrent reader sees the whole file or none


def build_cache(folder: Path, params: dict[str, Any]) -> dict[str, Any]:
    """Write the three splits and ``info.json`` into ``folder`` (unless they are there); return the info."""
    info_file = folder / "info.json"
    if info_file.is_file():
        return json.loads(info_file.read_text(encoding="utf-8"))
    folder.mkdir(parents=True, exist_ok=True)
    counts = {}
    for part in PARTS:
        document = generate_split(part, params[f"{part}_contexts"], seed=params["seed"], people=params["people"],
                                  facts=tuple(params["facts"]), fillers=params["fillers"],
                                  questions=params["questions_per_context"], unanswerable=params["unanswerable"])
        _write_json(folder / f"{part}.json", document)
        qas = [qa for article in document["data"] for p in article["paragraphs"] for qa in p["qas"]]
        counts[part] = {"contexts": len(document["data"]), "questions": len(qas),
                        "unanswerable": sum(1 for qa in qas if qa["is_impossible"])}
    pools = _pools(params["seed"])
    info = {"params": params, "splits": counts,
            "entities": {name: {part: len(pools[name][part]) for part in PARTS} for name in POOL_NAMES},
            "templates": {"train": vocab.TRAIN_TEMPLATES, "held_out": "the rest, for val and test"}}
    _write_json(info_file, info)
    return info


def _check(contexts: dict[str, int], people: int, facts: Sequence[int], questions: int, unanswerable: float) -> None:
    if any(count < 1 for count in contexts.values()):
        raise ConfigError(f"synthetic-bios needs at least one context per split, got {contexts}")
    if not 1 <= people <= 4:
        raise ConfigError(f"synthetic-bios: people is 1–4 per context (the test entity pools hold 5 of the smallest "
                          f"kind), got {people}")
    if len(facts) != 2 or not 1 <= facts[0] <= facts[1] <= len(vocab.POOLS):
        raise ConfigError(f"synthetic-bios: facts is [min, max] facts per person within 1–{len(vocab.POOLS)}, "
                          f"got {list(facts)}")
    if questions < 1 or not 0.0 <= unanswerable < 1.0:
        raise ConfigError("synthetic-bios: questions_per_context must be ≥ 1 and 0 ≤ unanswerable < 1")


def create_synthetic_bios(*, split: str = "train", train_contexts: int = 600, val_contexts: int = 100,
                          test_contexts: int = 200, questions_per_context: int = 3, people: int = 3,
                          facts: Sequence[int] = (2, 4), fillers: int = 1, unanswerable: float = 0.0, seed: int = 0,
                          cache_dir: str | None = None, limit: int | None = None) -> SquadJsonSource:
    """Factory registered as dataset ``synthetic-bios`` (see the module docstring).

    Args:
        split: ``train``, ``val``, ``test`` or ``all``.
        train_contexts, val_contexts, test_contexts: biographies per split (each holds up to
            ``questions_per_context`` questions).
        people: people per context (one asked about per question, the others distractors), 1–4.
        facts: ``[min, max]`` facts stated per person.
        fillers: sentences about nobody put between people.
        unanswerable: fraction of questions without an answer in the context (SQuAD v2.0 style).
        seed: changes the entity split, the people and the sentences.
        cache_dir: where to build the files (default ``cache_dir("synthetic-bios")``).
        limit: keep only the first ``limit`` questions of the split.
    """
    if split not in SPLITS:
        raise ConfigError(f"synthetic-bios: split must be one of {SPLITS}, got {split!r}")
    contexts = {"train": train_contexts, "val": val_contexts, "test": test_contexts}
    _check(contexts, people, facts, questions_per_context, unanswerable)
    params = {"format": FORMAT_VERSION, **{f"{k}_contexts": int(v) for k, v in contexts.items()},
              "questions_per_context": int(questions_per_context), "people": int(people),
              "facts": [int(f) for f in facts], "fillers": int(fillers), "unanswerable": float(unanswerable),
              "seed": int(seed)}
    key = hashlib.sha1(json.dumps(params, sort_keys=True).encode()).hexdigest()[:12]
    folder = (Path(cache_dir) if cache_dir else polygraft_cache_dir("synthetic-bios")) / key
    info = build_cache(folder, params)
    parts = PARTS if split == "all" else (split,)
    source = SquadJsonSource(folder / f"{parts[0]}.json")
    for part in parts[1:]:
        source.examples.extend(SquadJsonSource(folder / f"{part}.json").examples)
    if limit is not None:
        source.examples = source.examples[: int(limit)]
    source.name = "synthetic-bios"
    source.info = info  # type: ignore[attr-defined]
    return source

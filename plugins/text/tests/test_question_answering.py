"""Task ``question-answering`` on the text backbone: windows over long contexts, span targets, decoding back to
characters, the no-answer threshold, bad answers, learning, and predict with --field."""

from __future__ import annotations

import itertools
import json

import pytest
import torch

import polygraft
from polygraft.cli import main
from polygraft.errors import ConfigError, DataError
from polygraft.interfaces import StepOutput
from polygraft.tasks.question_answering import answer_positions, best_spans

CONTEXT = ("john smith lives in paris. the dog sat on the mat. a cat ran in the park. the film was very good. "
           "john went to new york. the movie was bad.")


def example(answer: str, question: str = "where does john smith live?", context: str = CONTEXT,
            **extra) -> dict:
    start = context.index(answer)
    return {"question": question, "context": context, "answers": [{"text": answer, "answer_start": start}],
            "_origin": "tiny.json#q1", **extra}


@pytest.fixture
def task(catalog, tiny):
    torch.manual_seed(0)
    return polygraft.create_task("question-answering", backbone="bert", label_names=["start", "end"],
                                 backbone_options={**tiny, "max_length": 24}, catalog=catalog, doc_stride=6,
                                 max_question_tokens=8)


def test_long_contexts_are_read_in_overlapping_windows_that_cover_every_token(task) -> None:
    pipe = task.data_pipeline(training=True)
    item = pipe.prepare(example("new york"))
    windows = item["inputs"]["windows"]
    assert len(windows) > 3 and all(len(w["input_ids"]) <= 24 for w in windows)
    spans = [[tuple(o) for o, keep in zip(w["offsets"], w["context_mask"]) if keep] for w in windows]
    for before, after in itertools.pairwise(spans):
        assert before[-6:] == after[:6]  # doc_stride tokens shared by neighbours
    covered = {span for window in spans for span in window}
    pre = task.backbone.preprocessor.tokenizer
    whole = pre(CONTEXT, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    assert covered == {tuple(o) for o in whole}
    holding = [i for i, (s, e) in enumerate(zip(item["start_positions"], item["end_positions"])) if s > 0]
    assert holding and all(item["start_positions"][i] == 0 for i in range(len(windows)) if i not in holding)
    for i in holding:
        a, b = windows[i]["offsets"][item["start_positions"][i]][0], windows[i]["offsets"][item["end_positions"][i]][1]
        assert CONTEXT[a:b] == "new york"


def test_answer_positions_of_a_straddling_or_missing_answer_are_the_null_slot() -> None:
    offsets = [(0, 0), (0, 4), (5, 9), (10, 13), (0, 0)]
    mask = [False, True, True, True, False]
    assert answer_positions(offsets, mask, 5, 13) == (2, 3)
    assert answer_positions(offsets, mask, 6, 8) == (2, 2)  # inside a token: that token
    assert answer_positions(offsets, mask, 10, 20) == (0, 0)  # runs past the window
    assert answer_positions(offsets, mask, None, None) == (0, 0)


def test_best_spans_is_the_brute_force_maximum() -> None:
    generator = torch.Generator().manual_seed(0)
    start, end = torch.randn(6, 15, generator=generator), torch.randn(6, 15, generator=generator)
    mask = torch.rand(6, 15, generator=generator) > 0.3
    mask[:, 0] = False
    best, first, last = best_spans(start, end, mask, max_answer_tokens=4)
    for row in range(6):
        pairs = [(float(start[row, i] + end[row, j]), i, j) for i in range(15) for j in range(i, min(i + 4, 15))
                 if mask[row, i] and mask[row, j]]
        score, i, j = max(pairs)
        assert float(best[row]) == pytest.approx(score) and (int(first[row]), int(last[row])) == (i, j)


def _gold_logits(batch) -> torch.Tensor:
    rows, length = batch["inputs"]["input_ids"].shape
    logits = torch.full((rows, length, 2), -3.0)
    logits[torch.arange(rows), batch["start_positions"], 0] = 4.0
    logits[torch.arange(rows), batch["end_positions"], 1] = 4.0
    return logits


def test_gold_targets_decode_to_the_gold_characters_across_windows(task) -> None:
    pipe = task.data_pipeline(training=False)
    examples = [example("new york"), example("paris"), example("the mat", question="where did the dog sit?")]
    batch = pipe.collate([pipe.prepare(e) for e in examples])
    assert batch["meta"]["window_example"].tolist() == sorted(batch["meta"]["window_example"].tolist())
    spans = task.decode(_gold_logits(batch), batch["meta"])
    assert [s["text"] for s in spans] == ["new york", "paris", "the mat"]
    assert [CONTEXT[s["start"]:s["end"]] for s in spans] == ["new york", "paris", "the mat"]
    task.reset_metrics()
    task.update_metrics(batch, StepOutput(loss=torch.tensor(0.0), outputs=_gold_logits(batch)))
    assert task.compute_metrics() == {"exact": 1.0, "f1": 1.0, "questions": 3.0}


def test_no_answer_needs_allow_no_answer_and_follows_the_threshold(catalog, tiny) -> None:
    options = {"backbone_options": {**tiny, "max_length": 24}, "catalog": catalog, "doc_stride": 6,
               "max_question_tokens": 8, "label_names": ["start", "end"]}
    strict = polygraft.create_task("question-answering", backbone="bert", **options)
    unanswerable = {"question": "who is the mayor?", "context": CONTEXT, "answers": [], "_origin": "f.json#q9"}
    with pytest.raises(DataError, match=r"f\.json#q9: .*allow_no_answer"):
        strict.data_pipeline(training=True).prepare(unanswerable)
    for threshold, says_no_answer in ((0.0, True), (100.0, False)):
        torch.manual_seed(0)
        task = polygraft.create_task("question-answering", backbone="bert", allow_no_answer=True,
                                     no_answer_threshold=threshold, **options)
        pipe = task.data_pipeline(training=False)
        batch = pipe.collate([pipe.prepare(unanswerable)])
        assert batch["start_positions"].eq(0).all()
        logits = torch.full((*batch["inputs"]["input_ids"].shape, 2), -3.0)
        logits[:, 0, :] = 5.0  # every window says "no answer" strongly: null score 10
        where = int(batch["meta"]["context_mask"][1].nonzero()[0])
        logits[1, where, :] = 1.0  # one weaker span (score 2): margin 8
        (span,) = task.decode(logits, batch["meta"])
        assert span["margin"] == pytest.approx(8.0) and span["text"]
        task.reset_metrics()
        task.update_metrics(batch, StepOutput(loss=torch.tensor(0.0), outputs=logits))
        metrics = task.compute_metrics()
        assert metrics["exact"] == (1.0 if says_no_answer else 0.0)
        assert metrics["no_answer_questions"] == 1.0 and metrics["best_exact"] == 1.0
        task.eval()


@pytest.mark.parametrize(("answers", "message"), [
    ([{"text": "paris", "answer_start": 500}], "outside its context"),
    ([{"text": "paris", "answer_start": 0}], "does not match the context"),
    ([{"text": "", "answer_start": 0}], "non-empty 'text'"),
    ("paris", "must be a list"),
])
def test_bad_answers_name_their_origin(task, answers, message) -> None:
    bad = {"question": "where?", "context": CONTEXT, "answers": answers, "_origin": "data.json#q7"}
    with pytest.raises(DataError, match=rf"data\.json#q7: .*{message}"):
        task.data_pipeline(training=True).prepare(bad)
    with pytest.raises(DataError, match="non-empty 'question'"):
        task.data_pipeline(training=True).prepare({"context": CONTEXT})


def test_long_questions_are_cut_and_counted(task) -> None:
    pipe = task.data_pipeline(training=True)
    batch = pipe.collate([pipe.prepare(example("paris", question="where " * 20 + "does john live?"))])
    assert batch["meta"]["truncated"].tolist() == [True]
    assert pipe.preprocessor.truncation["examples"] == 1


def test_window_settings_that_cannot_fit_are_refused(catalog, tiny) -> None:
    with pytest.raises(ConfigError, match="doc_stride"):
        polygraft.create_task("question-answering", backbone="bert", label_names=["start", "end"],
                              backbone_options={**tiny, "max_length": 24}, catalog=catalog, doc_stride=20)


def test_learns_to_extract_spans(catalog, tiny) -> None:
    torch.manual_seed(0)
    task = polygraft.create_task("question-answering", backbone="bert", label_names=["start", "end"],
                                 backbone_options={**tiny, "max_length": 64}, catalog=catalog, doc_stride=8,
                                 max_question_tokens=16)
    short = "john smith lives in paris. the dog sat on the mat. a cat ran in the park."
    examples = [example("paris", context=short), example("the mat", question="where did the dog sit?", context=short),
                example("john smith", question="who lives in paris?", context=short)]
    pipe = task.data_pipeline(training=True)
    batch = pipe.collate([pipe.prepare(e) for e in examples])
    assert len(batch["inputs"]["input_ids"]) == len(examples)  # one window each
    optimizer = torch.optim.AdamW(task.parameters(), lr=3e-3)
    task.train()

    def evaluate() -> tuple[float, dict[str, float]]:
        task.eval()
        task.reset_metrics()
        with torch.no_grad():
            output = task(batch)
            task.update_metrics(batch, output)
        task.train()
        return float(output.loss), task.compute_metrics()

    before, untrained = evaluate()
    for _ in range(80):
        loss = task(batch).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after, trained = evaluate()
    assert after < before / 4 and untrained["exact"] < 0.5
    assert trained["exact"] == 1.0 and trained["f1"] == 1.0


def test_finetune_then_predict_with_fields(catalog, tiny, tmp_path, capsys) -> None:
    data = {"version": "1.1", "data": [{"title": "t", "paragraphs": [{"context": CONTEXT, "qas": [
        {"id": f"q{i}", "question": q, "answers": [{"text": a, "answer_start": CONTEXT.index(a)}]}
        for i, (q, a) in enumerate([("where does john live?", "paris"), ("where did the dog sit?", "the mat")])]}]}]}
    (tmp_path / "qa.json").write_text(json.dumps(data))
    recipe = {"task": "question-answering", "backbone": "bert", "backbone_options": {**tiny, "max_length": 24},
              "task_options": {"doc_stride": 6, "max_question_tokens": 8},
              "data": {"train": {"dataset": "squad-json", "path": str(tmp_path / "qa.json")},
                       "val": {"dataset": "squad-json", "path": str(tmp_path / "qa.json")}},
              "trainer": {"max_steps": 2, "batch_size": 2, "progress": False, "num_workers": 0},
              "output_dir": str(tmp_path / "run")}
    result = polygraft.run_recipe(polygraft.Recipe.from_dict(recipe), catalog=catalog)
    assert {"val/exact", "val/f1"} <= set(result.metrics)
    capsys.readouterr()
    assert main(["predict", str(tmp_path / "run"), "--field", "question=where does john live?",
                 "--field", f"context={CONTEXT}", "--json"]) == 0
    (answer,) = json.loads(capsys.readouterr().out)
    assert answer["input"] == {"question": "where does john live?", "context": CONTEXT}
    assert CONTEXT[answer["start"]:answer["end"]] == answer["answer"] and 0.0 <= answer["score"] <= 1.0
    assert main(["predict", str(tmp_path / "run"), "--field", "question"]) == 2
    assert "NAME=VALUE" in capsys.readouterr().err


def test_task_answers_with_the_modality_free_meta_only(task) -> None:
    pipe = task.data_pipeline(training=False)
    batch = pipe.collate([pipe.prepare({"question": "where?", "context": CONTEXT})])
    assert "start_positions" not in batch and {"window_example", "offsets", "context_mask"} <= set(batch["meta"])
    task.eval()
    (prediction,) = task.predict(batch)
    assert set(prediction) == {"answer", "start", "end", "score"}
    assert CONTEXT[prediction["start"]:prediction["end"]] == prediction["answer"]

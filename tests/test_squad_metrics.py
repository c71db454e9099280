"""SQuAD exact match / F1 against independent implementations: torchmetrics' SQuAD (the official v1.1 script) and
a transcription of the official v2.0 evaluation script (unanswerable questions, the best no-answer threshold)."""

from __future__ import annotations

import collections
import random
import re
import string

import pytest

from polygraft.tasks.squad_metrics import SquadScores, exact_match, f1_score, normalize_answer

# (prediction, gold answers): articles, punctuation, case, whitespace, repeated words, several golds, numbers,
# a prediction that normalises to nothing, non-ASCII punctuation (kept by the official normalisation)
AWKWARD = [
    ("The Eiffel Tower", ["Eiffel Tower"]),
    ("eiffel tower!!", ["The Eiffel Tower"]),
    ("an apple a day", ["apple day"]),
    ("Anthem", ["anthem"]),  # 'an' is removed only as a whole word
    ("theatre", ["the atre"]),
    ("1,000 people", ["1000 people"]),
    ("New   York\tCity", ["new york city"]),
    ("the the the cat", ["cat cat"]),
    ("cat cat dog", ["cat dog dog", "mouse"]),
    ("Paris", ["London", "Berlin"]),
    ("in 1962", ["1962", "in the year 1962"]),
    (".", ["a dot"]),
    ("the", ["something"]),
    ("Saint-Étienne", ["saint étienne", "St Étienne"]),
    ("“quoted” answer", ["quoted answer"]),
    ("rock — and roll", ["rock and roll"]),
    ("U.S.A.", ["USA"]),
    ("a b c d e f", ["c d e f g h"]),
    ("", ["empty prediction"]),
]


def test_normalisation_matches_the_official_rules() -> None:
    assert normalize_answer("  The  Quick, brown FOX!  ") == "quick brown fox"
    assert normalize_answer("An anthem of a nation") == "anthem of nation"
    assert normalize_answer("“smart” quotes") == "“smart” quotes"  # not in string.punctuation: kept, as the script


def _torchmetrics_squad(prediction: str, answers: list[str]) -> tuple[float, float]:
    from torchmetrics.functional.text import squad

    scores = squad([{"prediction_text": prediction, "id": "q"}],
                   [{"answers": {"answer_start": [0] * len(answers), "text": answers}, "id": "q"}])
    return float(scores["exact_match"]) / 100, float(scores["f1"]) / 100


@pytest.mark.parametrize(("prediction", "answers"), AWKWARD)
def test_each_question_scores_as_torchmetrics_squad_v1(prediction: str, answers: list[str]) -> None:
    reference_exact, reference_f1 = _torchmetrics_squad(prediction, answers)
    assert exact_match(prediction, answers) == reference_exact
    assert f1_score(prediction, answers) == pytest.approx(reference_f1, abs=1e-6)


def test_aggregate_matches_torchmetrics_over_all_questions() -> None:
    from torchmetrics.text import SQuAD

    metric, scores = SQuAD(), SquadScores()
    for index, (prediction, answers) in enumerate(AWKWARD):
        metric.update([{"prediction_text": prediction, "id": str(index)}],
                      [{"answers": {"answer_start": [0] * len(answers), "text": answers}, "id": str(index)}])
        scores.add(answers, prediction, prediction)
    reference = metric.compute()
    ours = scores.compute()
    assert ours["exact"] == pytest.approx(float(reference["exact_match"]) / 100, abs=1e-6)
    assert ours["f1"] == pytest.approx(float(reference["f1"]) / 100, abs=1e-6)
    assert ours["questions"] == len(AWKWARD) and "has_answer_f1" not in ours


# ---- the official SQuAD v2.0 evaluation script (evaluate-v2.0.py), transcribed function by function ----------
def _v2_normalize_answer(s: str) -> str:
    def remove_articles(text: str) -> str:
        return re.sub(re.compile(r"\b(a|an|the)\b", re.UNICODE), " ", text)

    def white_space_fix(text: str) -> str:
        return " ".join(text.split())

    def remove_punc(text: str) -> str:
        exclude = set(string.punctuation)
        return "".join(ch for ch in text if ch not in exclude)

    return white_space_fix(remove_articles(remove_punc(s.lower())))


def _v2_get_tokens(s: str) -> list[str]:
    return _v2_normalize_answer(s).split() if s else []


def _v2_compute_exact(a_gold: str, a_pred: str) -> int:
    return int(_v2_normalize_answer(a_gold) == _v2_normalize_answer(a_pred))


def _v2_compute_f1(a_gold: str, a_pred: str) -> float:
    gold_toks, pred_toks = _v2_get_tokens(a_gold), _v2_get_tokens(a_pred)
    common = collections.Counter(gold_toks) & collections.Counter(pred_toks)
    num_same = sum(common.values())
    if len(gold_toks) == 0 or len(pred_toks) == 0:
        return int(gold_toks == pred_toks)
    if num_same == 0:
        return 0
    precision = 1.0 * num_same / len(pred_toks)
    recall = 1.0 * num_same / len(gold_toks)
    return (2 * precision * recall) / (precision + recall)


def _v2_get_raw_scores(dataset: dict[str, list[str]], preds: dict[str, str]) -> tuple[dict, dict]:
    exact_scores, f1_scores = {}, {}
    for qid, answers in dataset.items():
        gold_answers = [a for a in answers if _v2_normalize_answer(a)]
        if not gold_answers:
            gold_answers = [""]
        a_pred = preds[qid]
        exact_scores[qid] = max(_v2_compute_exact(a, a_pred) for a in gold_answers)
        f1_scores[qid] = max(_v2_compute_f1(a, a_pred) for a in gold_answers)
    return exact_scores, f1_scores


def _v2_apply_no_ans_threshold(scores: dict, na_probs: dict, qid_to_has_ans: dict, na_prob_thresh: float) -> dict:
    new_scores = {}
    for qid, s in scores.items():
        pred_na = na_probs[qid] > na_prob_thresh
        new_scores[qid] = float(not qid_to_has_ans[qid]) if pred_na else s
    return new_scores


def _v2_find_best_thresh(preds: dict, scores: dict, na_probs: dict, qid_to_has_ans: dict) -> tuple[float, float]:
    num_no_ans = sum(1 for k in qid_to_has_ans if not qid_to_has_ans[k])
    cur_score = num_no_ans
    best_score = cur_score
    best_thresh = 0.0
    qid_list = sorted(na_probs, key=lambda k: na_probs[k])
    for qid in qid_list:
        if qid not in scores:
            continue
        if qid_to_has_ans[qid]:
            diff = scores[qid]
        elif preds[qid]:
            diff = -1
        else:
            diff = 0
        cur_score += diff
        if cur_score > best_score:
            best_score = cur_score
            best_thresh = na_probs[qid]
    return 100.0 * best_score / len(scores), best_thresh


def _questions(seed: int) -> tuple[dict[str, list[str]], dict[str, str], dict[str, float]]:
    """Answerable and unanswerable questions with span predictions of every kind and distinct margins."""
    rng = random.Random(seed)
    dataset, preds, margins = {}, {}, {}
    for index in range(60):
        prediction, answers = AWKWARD[index % len(AWKWARD)]
        qid = f"q{index}"
        if rng.random() < 0.4:
            answers = [] if rng.random() < 0.7 else ["the", "a"]  # no gold, or golds that normalise to nothing
        dataset[qid], preds[qid] = list(answers), prediction if rng.random() < 0.9 else ""
        margins[qid] = rng.uniform(-3.0, 3.0)
    return dataset, preds, margins


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("threshold", [-1.0, 0.0, 0.7])
def test_unanswerable_questions_and_best_threshold_match_the_v2_script(seed: int, threshold: float) -> None:
    dataset, preds, margins = _questions(seed)
    has_answer = {qid: any(_v2_normalize_answer(a) for a in answers) for qid, answers in dataset.items()}
    assert 0 < sum(has_answer.values()) < len(dataset)
    exact_raw, f1_raw = _v2_get_raw_scores(dataset, preds)
    exact_thresh = _v2_apply_no_ans_threshold(exact_raw, margins, has_answer, threshold)
    f1_thresh = _v2_apply_no_ans_threshold(f1_raw, margins, has_answer, threshold)

    scores = SquadScores()
    for qid, answers in dataset.items():
        answered = "" if margins[qid] > threshold else preds[qid]
        scores.add(answers, preds[qid], answered, margins[qid])
    ours = scores.compute()

    def mean(values: dict, qids: list[str]) -> float:
        return sum(values[q] for q in qids) / len(qids)

    everyone = list(dataset)
    has = [q for q in everyone if has_answer[q]]
    no = [q for q in everyone if not has_answer[q]]
    assert ours["exact"] == pytest.approx(mean(exact_thresh, everyone))
    assert ours["f1"] == pytest.approx(mean(f1_thresh, everyone))
    assert ours["has_answer_f1"] == pytest.approx(mean(f1_thresh, has))
    assert ours["no_answer_exact"] == pytest.approx(mean(exact_thresh, no))
    assert ours["has_answer_questions"] == len(has) and ours["no_answer_questions"] == len(no)
    for name, raw in (("exact", exact_raw), ("f1", f1_raw)):
        best, best_threshold = _v2_find_best_thresh(preds, raw, margins, has_answer)
        assert ours[f"best_{name}"] == pytest.approx(best / 100)
        assert ours[f"best_{name}_threshold"] == pytest.approx(best_threshold)


def test_empty_scores_report_nothing() -> None:
    assert SquadScores().compute() == {}

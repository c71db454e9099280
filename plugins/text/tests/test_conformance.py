"""polygraft's conformance kit on every component of polygraft-text (tiny random BERT, tiny files)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from polygraft.testing import check_plugin


def test_every_text_component_conforms(tmp_path: Path, tiny: dict[str, Any]) -> None:
    (tmp_path / "reviews.csv").write_text("text,label\nthe cat sat,pos\nawful film,neg\na good movie,pos\n")
    (tmp_path / "corpus.txt").write_text("the cat sat on the mat\na dog ran in the park\njohn went to paris\n")
    (tmp_path / "ner.conll").write_text("john B-PER\nsmith I-PER\nwent O\n\nparis B-LOC\nis O\n\nnew B-LOC\nyork I-LOC\n")
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"text": ["the cat sat", "awful film", "a good movie"], "label": ["pos", "neg", "pos"]}),
                   tmp_path / "reviews.parquet")
    context = "ada sat on the mat. john went to paris."
    qas = [{"id": "q1", "question": "who sat?", "answers": [{"text": "ada", "answer_start": 0}]}]
    (tmp_path / "qa.json").write_text(json.dumps({"data": [{"paragraphs": [{"context": context, "qas": qas}]}]}))
    gpt2 = {"tokenizer": tiny["tokenizer"], "size": "test", "max_length": 32}
    report = check_plugin("polygraft_text.plugin", options={
        "bert": [{**tiny, "pooling": "cls"}, {**tiny, "pooling": "mean"}],
        "gpt2": [{**gpt2, "pooling": "last"}, {**gpt2, "pooling": "mean"}],
        "text-csv": {"path": str(tmp_path / "reviews.csv")},
        "hf-dataset": {"path": str(tmp_path / "reviews.parquet"), "cache_dir": str(tmp_path / "cache")},
        "text-lines": {"path": str(tmp_path / "corpus.txt")},
        "conll": {"path": str(tmp_path / "ner.conll")},
        "squad-json": {"path": str(tmp_path / "qa.json")},
        "synthetic-bios": {"train_contexts": 2, "val_contexts": 1, "test_contexts": 1,
                           "cache_dir": str(tmp_path / "bios")},
    }, pairs={"objective:clm": "gpt2"})
    checked = {result.component.split(" {")[0] for result in report.results}
    assert {"backbone 'bert'", "backbone 'gpt2'", "dataset 'hf-dataset'", "dataset 'rotten-tomatoes'",
            "dataset 'wnut-tweets'",
            "dataset 'squad-json'", "dataset 'synthetic-bios'", "weights 'minilm-l6'"} <= checked
    assert any(c.startswith("objective 'mlm' on backbone 'bert'") for c in checked)
    assert any(c.startswith("objective 'clm' on backbone 'gpt2'") for c in checked)

"""hf-dataset: Parquet, Arrow and save_to_disk folders through `datasets`, memory-mapped; errors name the file."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import polygraft
from polygraft.errors import DataError

ROWS = {"review": ["great film", "dull", "a fine story", "boring"], "stars": ["pos", "neg", "pos", "neg"]}


def test_parquet_files_a_glob_and_column_mapping(tmp_path: Path) -> None:
    for part in (0, 1):
        table = pa.table({key: values[part * 2 : part * 2 + 2] for key, values in ROWS.items()})
        pq.write_table(table, tmp_path / f"part-{part}.parquet")
    source = polygraft.load_dataset("hf-dataset", path=str(tmp_path / "*.parquet"), text_column="review",
                                    label_column="stars", cache_dir=str(tmp_path / "cache"))
    assert len(source) == 4 and source.label_names == ["neg", "pos"]
    assert [source[i]["text"] for i in range(4)] == ROWS["review"]
    assert [source[i]["label"] for i in range(4)] == ROWS["stars"]
    assert source.fingerprint() == polygraft.load_dataset(
        "hf-dataset", path=str(tmp_path), text_column="review", label_column="stars",
        cache_dir=str(tmp_path / "cache")).fingerprint()  # the folder of the same files: the same data


def test_a_save_to_disk_dataset_dict_with_class_labels_is_memory_mapped(tmp_path: Path) -> None:
    import datasets

    features = datasets.Features({"text": datasets.Value("string"),
                                  "label": datasets.ClassLabel(names=["neg", "pos"])})
    train = datasets.Dataset.from_dict({"text": ROWS["review"], "label": [1, 0, 1, 0]}, features=features)
    datasets.DatasetDict({"train": train, "test": train.select([0])}).save_to_disk(str(tmp_path / "saved"))
    source = polygraft.load_dataset("hf-dataset", path=str(tmp_path / "saved"), split="train")
    assert source.label_names == ["neg", "pos"] and source[1]["label"] == "neg" and source[2]["label"] == "pos"
    assert source.dataset.cache_files, "read from the Arrow files on disk, not copied into memory"
    with pytest.raises(DataError, match=r"splits \['test', 'train'\]; pass split"):
        polygraft.load_dataset("hf-dataset", path=str(tmp_path / "saved"))


def test_bad_paths_columns_and_rows_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"nothing.*\.parquet.*no \.parquet or \.arrow files"):
        polygraft.load_dataset("hf-dataset", path=str(tmp_path / "nothing" / "*.parquet"))
    path = tmp_path / "reviews.parquet"
    pq.write_table(pa.table({"text": ["fine", " "], "label": ["pos", "neg"]}), path)
    with pytest.raises(DataError, match=r"reviews\.parquet.*missing column\(s\) \['stars'\]; the data set has "
                                        r"\['text', 'label'\]"):
        polygraft.load_dataset("hf-dataset", path=str(path), label_column="stars", cache_dir=str(tmp_path / "c"))
    source = polygraft.load_dataset("hf-dataset", path=str(path), cache_dir=str(tmp_path / "c"))
    with pytest.raises(DataError, match=r"reviews\.parquet.*empty text in column 'text' at row 1"):
        source[1]


def test_without_the_datasets_package_the_error_says_what_to_install(tmp_path: Path, monkeypatch) -> None:
    import sys

    from polygraft.errors import ConfigError

    monkeypatch.setitem(sys.modules, "datasets", None)
    with pytest.raises(ConfigError, match=r"needs the datasets package: pip install -r requirements/scale\.txt"):
        polygraft.load_dataset("hf-dataset", path=str(tmp_path))


def test_a_tiny_bert_trains_from_parquet(tmp_path: Path, tiny) -> None:
    pq.write_table(pa.table({"text": ROWS["review"] * 4, "label": ROWS["stars"] * 4}), tmp_path / "train.parquet")
    data = polygraft.load_dataset("hf-dataset", path=str(tmp_path / "train.parquet"), cache_dir=str(tmp_path / "c"))
    task = polygraft.create_task("classification", backbone="bert", label_names=data.label_names,
                                 backbone_options=tiny)
    result = polygraft.Trainer({"max_steps": 3, "batch_size": 4, "progress": False},
                               output_dir=tmp_path / "run").fit(task, train_data=data)
    assert result.history and (tmp_path / "run" / "model").is_dir()

"""Text data sources: delimited/JSONL files, CoNLL tag files, plain-text corpora and packaged datasets."""

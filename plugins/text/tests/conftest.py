"""Shared fixtures: a tiny WordPiece tokenizer written by the test and tiny random BERT options."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

WORDS = ["the", "a", "cat", "dog", "sat", "ran", "on", "mat", "in", "new", "york", "paris", "john", "smith", "film",
         "good", "bad", "great", "awful", "movie", "is", "was", "very", "not", "and", "park", "to", "went", "lives"]
PIECES = ["##s", "##ing", "##ed", "##er"]
PUNCT = [".", ",", "!", "?", "'"]


@pytest.fixture(scope="session")
def vocab_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A WordPiece ``vocab.txt``: special tokens, some words, sub-word pieces and letters."""
    letters = [chr(c) for c in range(ord("a"), ord("z") + 1)]
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS, *PIECES, *PUNCT, *letters,
              *[f"##{c}" for c in letters]]
    path = tmp_path_factory.mktemp("tokenizer") / "vocab.txt"
    path.write_text("\n".join(dict.fromkeys(tokens)) + "\n")
    return path


@pytest.fixture(scope="session")
def tiny(vocab_file: Path) -> dict[str, Any]:
    """Backbone options of a tiny random BERT (hidden 32, 2 layers) with the test tokenizer."""
    return {"tokenizer": str(vocab_file), "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
            "intermediate_size": 64, "max_length": 32}


@pytest.fixture
def catalog(polygraft_catalog_factory: Any) -> Any:
    """Builtins plus the text plugin only."""
    from polygraft_text import plugin

    return polygraft_catalog_factory(plugins=[("text", plugin)])

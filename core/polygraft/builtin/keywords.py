"""Generated sentences whose label one keyword decides: a text set with a known answer for explanations.

Each sentence is 6–14 filler words; a ``positive`` one has one positive keyword (wonderful, brilliant...) put at a
random place, a ``negative`` one a negative keyword (awful, dreadful...), a ``neutral`` one none. The neutral class
matters: without it, "no positive keyword" would already mean negative, a model could ignore the negative
keywords, and a faithful explanation would then rightly give them nothing. Here every keyword is needed, so an
explanation of a positive or negative prediction must put its largest share on the keyword. Every example carries
``keyword`` and its word index ``keyword_index`` (``None`` for neutral sentences). ``vocabulary()`` lists every
word, for tiny WordPiece tokenizers in tests.

Example:
    >>> from polygraft.builtin.keywords import KeywordSentences
    >>> data = KeywordSentences(size=3, seed=0)
    >>> example = data[0]
    >>> example["label"], example["text"].split()[example["keyword_index"]] == example["keyword"]
    ('negative', True)
    >>> data[1]["keyword"] is None
    True
"""

from __future__ import annotations

import random
from typing import Any

from polygraft.errors import ConfigError
from polygraft.interfaces.datasource import DataSource

KEYWORDS = {
    "positive": ("wonderful", "brilliant", "superb", "delightful", "excellent"),
    "negative": ("awful", "dreadful", "terrible", "horrible", "dull"),
}
FILLER = ("the", "a", "film", "story", "actor", "scene", "city", "night", "music", "director", "was", "is", "and",
          "with", "about", "in", "of", "on", "old", "new", "long", "short", "quiet", "loud", "first", "second",
          "house", "river", "train", "letter", "friend", "family", "summer", "winter", "town", "road", "song")


class KeywordSentences(DataSource):
    """``size`` sentences ``{"text", "label", "keyword", "keyword_index"}``, the three labels in turn; ``split``
    draws disjoint examples."""

    SPLITS = ("train", "val", "test", "all")

    def __init__(self, *, size: int = 400, min_words: int = 6, max_words: int = 14, seed: int = 0,
                 split: str = "train") -> None:
        super().__init__()
        if split not in self.SPLITS:
            raise ConfigError(f"keyword-sentences: split must be one of {self.SPLITS}, got {split!r}")
        if not 1 <= min_words <= max_words:
            raise ConfigError(f"keyword-sentences: need 1 <= min_words <= max_words, got {min_words}, {max_words}")
        self.name = "keyword-sentences"
        self.size, self.min_words, self.max_words = int(size), int(min_words), int(max_words)
        self.seed, self.split_name = int(seed), split
        self.label_names = ["negative", "neutral", "positive"]

    def __len__(self) -> int:
        return self.size

    def _example(self, index: int) -> dict[str, Any]:
        rng = random.Random(f"{self.seed}/{self.split_name}/{index}")
        label = self.label_names[index % len(self.label_names)]
        words = [rng.choice(FILLER) for _ in range(rng.randint(self.min_words, self.max_words))]
        if label == "neutral":
            return {"text": " ".join(words), "label": label, "keyword": None, "keyword_index": None}
        keyword = rng.choice(KEYWORDS[label])
        position = rng.randint(0, len(words))
        words.insert(position, keyword)
        return {"text": " ".join(words), "label": label, "keyword": keyword, "keyword_index": position}

    @staticmethod
    def vocabulary() -> list[str]:
        """Every word the sentences use (filler and keywords), sorted."""
        return sorted({*FILLER, *(word for group in KEYWORDS.values() for word in group)})

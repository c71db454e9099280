"""Default raw examples for the builtin modalities' input keys (``text``, ``image``, ``audio``, ``x``).

They are small, deterministic, and deliberately uneven (different lengths and sizes, a vector mean far from 0) so
that padding, resizing and fitted statistics are exercised. A new modality's plugin passes its own ``examples=``.

Example:
    >>> from polygraft.conformance.examples import default_examples
    >>> [sorted(e) for e in default_examples("text")][:1]
    [['text']]
"""

from __future__ import annotations

from typing import Any

SAMPLE_RATE = 16000
NUM_EXAMPLES = 4


def _text() -> list[dict[str, Any]]:
    return [{"text": "the cat sat on the mat"}, {"text": "a dog ran in the park"},
            {"text": "paris"}, {"text": "the film was not very good and the actors were bad"}]


def _image() -> list[dict[str, Any]]:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    noise = Image.fromarray(rng.integers(0, 256, (40, 56, 3), dtype=np.uint8))
    return [{"image": Image.new("RGB", (48, 40), "red")}, {"image": Image.new("L", (30, 30), 90)},
            {"image": noise}, {"image": Image.new("RGB", (64, 32), "navy")}]


def _audio() -> list[dict[str, Any]]:
    import numpy as np

    rng = np.random.default_rng(0)
    out = []
    for seconds, frequency in ((0.5, 220.0), (0.3, 440.0), (0.8, 330.0), (0.4, 550.0)):
        t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
        wave = 0.3 * np.sin(2 * np.pi * frequency * t) + 0.02 * rng.standard_normal(t.shape)
        out.append({"audio": wave.astype(np.float32), "sample_rate": SAMPLE_RATE})
    return out


def _vectors(size: int) -> list[dict[str, Any]]:
    import numpy as np

    rng = np.random.default_rng(0)
    rows = 5.0 + 2.0 * rng.standard_normal((NUM_EXAMPLES, size))  # mean 5: fitted statistics must matter
    return [{"x": [float(v) for v in row]} for row in rows]


def default_examples(input_key: str, *, size: int | None = None) -> list[dict[str, Any]] | None:
    """Raw examples for a builtin input key; ``None`` for keys the kit does not know (pass ``examples=``)."""
    if input_key == "text":
        return _text()
    if input_key == "image":
        return _image()
    if input_key == "audio":
        return _audio()
    if input_key == "x":
        return _vectors(size or 4)
    return None


def vector_size(backbone: Any) -> int | None:
    """How many features a vector backbone reads: ``in_features`` of its preprocessor or build options."""
    for value in (getattr(backbone.preprocessor, "in_features", None), backbone.build_options.get("in_features")):
        if isinstance(value, int) and value > 0:
            return value
    return None


def labelled(examples: list[dict[str, Any]], labels: tuple[str, ...] = ("a", "b")) -> list[dict[str, Any]]:
    """The examples with alternating class labels (for a classification step)."""
    return [{**example, "label": labels[index % len(labels)]} for index, example in enumerate(examples)]

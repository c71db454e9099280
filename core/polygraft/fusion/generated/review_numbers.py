"""``review-numbers``: a Rotten Tomatoes review with two numbers about the film; should we recommend it?

The reviews are the registered ``rotten-tomatoes`` dataset's (opened through the caller's catalog; its seeded,
disjoint train / val / test splits). Each review gets two generated numbers, ``popularity = 50 + 15·a`` and
``price = 10 + 3·b`` with ``a, b`` standard normal. With ``depends_on: both`` (the default) the label is ``yes``
when ``1.5·s + a − b > 0``, ``s`` = +1 for a fresh review, −1 for a rotten one: the review alone predicts it
about 85% as well as the review's sentiment can be read, the numbers alone about 65%, both together up to the
sentiment's own accuracy. With ``depends_on: text`` the label is the review's sentiment (``yes`` = fresh) and the
numbers are noise: a fused model should do as well as the text alone.

Columns: ``review`` (text), ``popularity``, ``price`` (numbers), ``review_with_numbers`` (the numbers written into
the text: "popularity 61.3, price 12.40. <review>", the everything-as-text baseline), ``label`` and ``score``
(``1.5·s + a − b``, the number whose sign is the label; ``label: score`` makes it the target, for ``regression``). By default the
fields are ``review``, ``popularity`` and ``price``; ``fields: [review_with_numbers]`` or ``[review]`` give the
baselines. Written once per option set into ``$POLYGRAFT_CACHE/review-numbers/<key>/``.

Example:
    >>> import tempfile, polygraft
    >>> data = polygraft.load_dataset("review-numbers", split="test", train_size=10, val_size=5, test_size=5,
    ...                               cache_dir=tempfile.mkdtemp())
    >>> len(data), data.label_names, sorted(data.fields)
    (5, ['no', 'yes'], ['popularity', 'price', 'review'])
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from polygraft.errors import ConfigError
from polygraft.fusion.generated.common import (
    GENERATED_SPLITS,
    build_once,
    cache_folder,
    choose_fields,
    choose_label,
    open_split,
    write_manifest,
)
from polygraft.fusion.manifest import MultimodalManifest

LABELS = ["no", "yes"]
COLUMNS = {"review": "text", "popularity": "number", "price": "number", "review_with_numbers": "text"}
DEFAULT_FIELDS = ["review", "popularity", "price"]
DEPENDS = ("both", "text")
LABEL_KINDS = ("recommend", "score")
FORMAT = 2


def score_for(fresh: bool, a: float, b: float, depends_on: str) -> float:
    """The number whose sign is the label (see the module docstring): ``±1`` with ``depends_on: text``."""
    sentiment = 1.0 if fresh else -1.0
    return sentiment if depends_on == "text" else 1.5 * sentiment + a - b


def label_for(fresh: bool, a: float, b: float, depends_on: str) -> str:
    """``yes`` or ``no`` (see the module docstring)."""
    return "yes" if score_for(fresh, a, b, depends_on) > 0 else "no"


def _write(folder: Path, parts: dict[str, Any], *, depends_on: str, seed: int) -> dict[str, Any]:
    header = ["review", "popularity", "price", "review_with_numbers", "label", "sentiment", "score"]
    every, counts = [], {}
    for split in GENERATED_SPLITS:
        rng = random.Random(f"review-numbers/{seed}/{split}")
        rows = []
        for example in parts[split]:
            a, b = rng.gauss(0.0, 1.0), rng.gauss(0.0, 1.0)
            popularity, price = round(50 + 15 * a, 1), round(10 + 3 * b, 2)
            text = " ".join(str(example["text"]).split())
            fresh = example["label"] == "fresh"
            a, b = (popularity - 50) / 15, (price - 10) / 3
            rows.append([text, popularity, price, f"popularity {popularity}, price {price:.2f}. {text}",
                         label_for(fresh, a, b, depends_on), example["label"], round(score_for(fresh, a, b, depends_on), 4)])
        write_manifest(folder / f"{split}.csv", header, rows)
        every += rows
        counts[split] = len(rows)
    write_manifest(folder / "all.csv", header, every)
    return {"sizes": counts}


def create_review_numbers(*, split: str = "train", depends_on: str = "both", train_size: int = 2000,
                          val_size: int = 500, test_size: int = 1000, seed: int = 0, fields: list[str] | None = None,
                          label: str = "recommend", text_dataset: str = "rotten-tomatoes", cache_dir: str | None = None,
                          catalog: Any = None) -> MultimodalManifest:
    """Dataset ``review-numbers`` (see the module docstring).

    Args:
        split: ``train``, ``val``, ``test`` or ``all``.
        depends_on: ``both`` (review and numbers) or ``text`` (the numbers are noise).
        train_size, val_size, test_size: reviews per split (``rotten-tomatoes``'s seeded, disjoint splits).
        seed: the reviews chosen and the numbers. fields: the fields to keep (default review, popularity, price).
        label: ``recommend`` (``yes`` / ``no``, the default) or ``score`` (the number behind it, for regression).
        text_dataset: the registered review dataset (``rotten-tomatoes``; fresh / rotten labels).
        cache_dir: where to write the set (default ``$POLYGRAFT_CACHE/review-numbers``).
        catalog: supplied by core: the reviews are opened through it.
    """
    from polygraft.components import build
    from polygraft.options import closest

    if depends_on not in DEPENDS:
        near = closest(str(depends_on), DEPENDS, n=1)
        hint = f"; did you mean {near[0]!r}?" if near else ""
        raise ConfigError(f"review-numbers: depends_on must be both or text, got {depends_on!r}{hint}")
    choose_label(label, LABEL_KINDS, name="review-numbers")
    sizes = {"train_size": train_size, "val_size": val_size, "test_size": test_size}
    params = {"dataset": "review-numbers", "depends_on": depends_on, **sizes, "seed": seed,
              "text_dataset": text_dataset, "format": FORMAT}
    folder = cache_folder("review-numbers", params, cache_dir)

    def write(tmp: Path) -> dict[str, Any]:
        nonlocal catalog
        if catalog is None:
            from polygraft.plugins import build_catalog

            catalog = build_catalog()
        parts = {part: build(catalog, "dataset", text_dataset, {**sizes, "seed": seed, "split": part},
                             where="review-numbers") for part in GENERATED_SPLITS}
        return _write(tmp, parts, depends_on=depends_on, seed=seed)

    build_once(folder, params, write)
    columns = choose_fields(COLUMNS, DEFAULT_FIELDS if fields is None else fields, name="review-numbers")
    if label == "score":
        return open_split(folder, split, columns, name="review-numbers", label="score", label_names=None)
    return open_split(folder, split, columns, name="review-numbers", label_names=LABELS)


__all__ = ["create_review_numbers", "label_for", "score_for"]

"""Train a small WordPiece vocabulary on a corpus (offline, with the ``tokenizers`` library).

A random-init BERT pretrained on a small corpus learns much faster with a vocabulary fitted to that corpus (a few
thousand pieces) than with a 30k general vocabulary whose rare rows are almost never updated. The ``vocab.txt``
written here is what ``backbone_options.tokenizer`` takes.

Command line (any registered dataset with a ``text`` field):

    polygraft text-vocab runs/rt_vocab --dataset rotten-tomatoes --option split=rest --vocab-size 4000

Example:
    >>> import tempfile
    >>> from polygraft_text.vocab import train_wordpiece
    >>> path = train_wordpiece(["a good film", "a bad film"] * 10, tempfile.mkdtemp(), vocab_size=60)
    >>> path.name
    'vocab.txt'
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def train_wordpiece(texts: Iterable[str], output_dir: str | Path, *, vocab_size: int = 4000,
                    min_frequency: int = 2, lowercase: bool = True) -> Path:
    """Fit a BERT WordPiece vocabulary (``[PAD]`` = id 0) to ``texts``; returns ``output_dir/vocab.txt``."""
    from tokenizers import BertWordPieceTokenizer

    tokenizer = BertWordPieceTokenizer(lowercase=lowercase, strip_accents=lowercase)
    tokenizer.train_from_iterator(iter(texts), vocab_size=vocab_size, min_frequency=min_frequency,
                                  special_tokens=SPECIAL_TOKENS, show_progress=False)
    output = Path(output_dir)
    output.mkdir(parents=True, exist_ok=True)
    tokenizer.save_model(str(output))
    return output / "vocab.txt"


def _option(text: str) -> tuple[str, object]:
    import yaml

    key, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"--option takes key=value, got {text!r}")
    return key, yaml.safe_load(value)


def main(argv: Sequence[str] | None = None) -> int:
    import polygraft

    parser = argparse.ArgumentParser(prog="polygraft text-vocab", description=__doc__.split("\n")[0])
    parser.add_argument("output_dir")
    parser.add_argument("--dataset", required=True, help="registered dataset name, e.g. rotten-tomatoes")
    parser.add_argument("--option", type=_option, action="append", default=[], metavar="KEY=VALUE",
                        help="dataset option, e.g. split=rest (repeatable)")
    parser.add_argument("--text-key", default="text")
    parser.add_argument("--vocab-size", type=int, default=4000)
    parser.add_argument("--min-frequency", type=int, default=2)
    args = parser.parse_args(argv)
    source = polygraft.load_dataset(args.dataset, **dict(args.option))
    texts = [example[args.text_key] for example in source]
    path = train_wordpiece(texts, args.output_dir, vocab_size=args.vocab_size, min_frequency=args.min_frequency)
    size = sum(1 for _ in path.open(encoding="utf-8"))
    print(f"{path}: {size} WordPiece tokens from {len(texts)} texts of {args.dataset}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

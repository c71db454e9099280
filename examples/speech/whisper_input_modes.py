"""Whisper tiny.en's encoder on a clip's own frames (``trimmed``) vs Whisper's 30-s padded input (``padded``).

Both modes run the same pretrained weights (``whisper-tiny-en``). For each, the script encodes spoken-digit clips
(frozen encoder, pooled features = mean over the frames that hold the clip), then fits a logistic regression
(scikit-learn, standardised features) on the training clips and scores it on the held-out voices of the test
split. It also prints the encoder's time per clip in each mode and how alike the two modes' features are
(cosine between the same clip's pooled vectors, after subtracting each mode's mean vector: the component every
clip shares).

Run (one thread; the padded mode costs ~30x the compute of the trimmed one, ~5 min for the defaults):
    OMP_NUM_THREADS=1 .venv/bin/python examples/speech/whisper_input_modes.py
    OMP_NUM_THREADS=1 .venv/bin/python examples/speech/whisper_input_modes.py --train-speeds 165 --train-pitches 45
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import numpy as np


def encode(backbone: Any, source: Any, batch_size: int) -> tuple[np.ndarray, float]:
    """Pooled features of every clip in ``source`` and the encoder's seconds per clip (preprocessing excluded)."""
    import torch

    pre, pooled, seconds = backbone.preprocessor, [], 0.0
    for start in range(0, len(source), batch_size):
        batch = pre.collate([pre(source[i]) for i in range(start, min(start + batch_size, len(source)))])
        began = time.perf_counter()
        with torch.no_grad():
            pooled.append(backbone(batch).pooled.numpy())
        seconds += time.perf_counter() - began
    return np.concatenate(pooled), seconds / len(source)


def probe(train: np.ndarray, train_y: list[int], test: np.ndarray, test_y: list[int], seed: int) -> float:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, random_state=seed))
    model.fit(train, train_y)
    return float(model.score(test, test_y))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train-speeds", type=int, nargs="*", default=[165])
    parser.add_argument("--train-pitches", type=int, nargs="*", default=[45])
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    import torch

    import polygraft

    train = polygraft.load_dataset("spoken-digits", split="train", speeds=args.train_speeds,
                                   pitches=args.train_pitches)
    test = polygraft.load_dataset("spoken-digits", split="test")
    labels = train.label_names
    train_y = [labels.index(train[i]["label"]) for i in range(len(train))]
    test_y = [labels.index(test[i]["label"]) for i in range(len(test))]
    results: dict[str, Any] = {"train_clips": len(train), "test_clips": len(test), "threads": torch.get_num_threads()}
    features = {}
    for mode in ("trimmed", "padded"):
        backbone = polygraft.create_backbone("whisper-encoder", weights="whisper-tiny-en", input_mode=mode).eval()
        train_x, _ = encode(backbone, train, args.batch_size)
        test_x, per_clip = encode(backbone, test, args.batch_size)
        features[mode] = test_x
        results[mode] = {"probe_test_accuracy": round(probe(train_x, train_y, test_x, test_y, args.seed), 4),
                         "encoder_ms_per_clip": round(1000 * per_clip, 1)}
        print(mode, results[mode], flush=True)
    a, b = (features[m] - features[m].mean(0) for m in ("trimmed", "padded"))
    cosine = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    results["pooled_cosine_trimmed_vs_padded"] = round(float(cosine.mean()), 3)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

"""The main demo (`make demo`): fine-tune a real ImageNet CNN on handwritten digits, then predict with it.

Everything is offline: the EfficientNet-Lite0 ImageNet weights and the MNIST-5k digits come from pip packages.
About two minutes on a 2-core laptop CPU.

    python examples/demo.py [--epochs 1] [--output runs/demo-digits]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import polygraft
from polygraft.recipe import Recipe, run_recipe

RECIPE = Path(__file__).parent / "vision" / "digits.yaml"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--output", default="runs/demo-digits")
    args = parser.parse_args()

    print(f"1. Fine-tuning ImageNet EfficientNet-Lite0 on 4,000 MNIST digits ({args.epochs} epoch) — {RECIPE}")
    config = Recipe.from_yaml(RECIPE, [f"trainer.max_epochs={args.epochs}", f"output_dir={args.output}"])
    start = time.perf_counter()
    result = run_recipe(config)
    print(f"   held-out accuracy {result.metrics['val/accuracy']:.3f} on 1,000 digits "
          f"in {time.perf_counter() - start:.0f} s")

    print("2. Loading the trained run and predicting five held-out digits")
    model = polygraft.load(result.run_dir)
    test = polygraft.load_dataset("mnist-5k", split="test", seed=0)
    pipeline = model.data_pipeline(training=False)
    examples = [test[i] for i in range(5)]
    for example, prediction in zip(examples, model.predict(pipeline.collate([pipeline.prepare(e) for e in examples]))):
        print(f"   true {example['label']}  predicted {prediction['label']}  (p={prediction['score']:.2f})")

    run = Path(result.run_dir)
    print(f"3. The run directory {run}/ holds: {', '.join(sorted(p.name for p in run.iterdir()))}")
    print(f"   learning curves: {run / 'curves.png'}   confusion matrix: {run / 'confusion.png'}")
    print(f"   predict from the shell: polygraft predict {run} some_digit.png --json")


if __name__ == "__main__":
    main()

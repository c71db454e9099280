"""The face-data recipe of examples/vision/README.md (one folder per identity, whole identities held out) trains,
and `predict RUN a b` answers with the threshold chosen on val."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from polygraft.cli import main

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


def write_identities(root: Path, split: str, names: list[str], per_identity: int) -> None:
    for number, name in enumerate(names):
        rng = np.random.default_rng(number + 100 * len(split))
        colour = rng.integers(40, 255, size=3)
        for index in range(per_identity):
            pixels = np.clip(colour + rng.normal(0, 12, size=(24, 24, 3)), 0, 255).astype(np.uint8)
            (root / split / name).mkdir(parents=True, exist_ok=True)
            Image.fromarray(pixels).save(root / split / name / f"{index}.png")


def test_identity_folders_train_and_answer_same_identity(tmp_path: Path, capsys) -> None:
    faces = tmp_path / "faces"
    write_identities(faces, "train", ["ada", "alan", "grace", "linus"], 3)
    write_identities(faces, "val", ["barbara", "edsger", "ken"], 3)
    write_identities(faces, "test", ["dennis", "donald"], 2)
    write_identities(faces, "test", ["margaret"], 1)  # a single example: pairs yes, rank-1 query no
    run = tmp_path / "run"
    assert main(["finetune", str(EXAMPLES / "vision" / "digits_open_set.yaml"),
                 f"data.train={{dataset: image-folder, path: {faces}}}",
                 f"data.val={{dataset: image-folder, path: {faces}}}",
                 f"data.test={{dataset: image-folder, path: {faces}}}",
                 "weights=null", "backbone_options.model_name=test_resnet", "backbone_options.image_size=32",
                 "trainer.max_steps=2", "trainer.batch_size=4", "trainer.progress=false", "trainer.num_workers=0",
                 f"output_dir={run}", "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)["metrics"]
    assert metrics["val/identities"] == 3 and metrics["test/identities"] == 3
    assert metrics["test/single_example_identities"] == 1 and metrics["test/rank1_queries"] == 4
    images = sorted((faces / "test" / "dennis").glob("*.png"))
    assert main(["predict", str(run), str(images[0]), str(images[1]), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    answer = printed[0] if isinstance(printed, list) else printed  # `predict --json` may print a list
    assert answer["threshold"] == round(metrics["val/eer_threshold"], 6)
    assert answer["same_identity"] == (answer["score"] >= answer["threshold"])

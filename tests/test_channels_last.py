"""``trainer.channels_last: auto``: on exactly for the backbones whose weights are mostly 2-D convolutions."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import polygraft
from polygraft.errors import ConfigError
from polygraft.training.config import TrainerConfig

WORDS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "good", "film", "bad"]


@pytest.fixture(scope="module")
def vocab(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("vocab") / "vocab.txt"
    path.write_text("\n".join(WORDS) + "\n")
    return path


def first_party(vocab: Path) -> dict[str, tuple[str, dict]]:
    """Each first-party backbone family, tiny, with what the documented rule says about it."""
    return {
        "timm efficientnet (CNN)": ("timm", {"model_name": "test_efficientnet"}),
        "timm resnet maps (CNN, detection/segmentation)": ("timm", {"model_name": "test_resnet", "features": "maps"}),
        "timm vit (transformer)": ("timm", {"model_name": "test_vit", "image_size": 32}),
        "spectrogram (a CNN on log-mel images)": ("spectrogram", {"model_name": "test_resnet", "n_mels": 16}),
        "bert": ("bert", {"tokenizer": str(vocab), "hidden_size": 32, "num_hidden_layers": 1,
                          "num_attention_heads": 2, "intermediate_size": 64}),
        "gpt2": ("gpt2", {"tokenizer": str(vocab), "size": "test"}),
        "wav2vec2": ("wav2vec2", {"size": "tiny"}),
        "toy": ("toy", {"in_features": 3}),
    }


EXPECTED = {"timm efficientnet (CNN)": True, "timm resnet maps (CNN, detection/segmentation)": True,
            "timm vit (transformer)": False, "spectrogram (a CNN on log-mel images)": True, "bert": False,
            "gpt2": False, "wav2vec2": False, "toy": False}


def test_auto_follows_the_documented_rule_for_every_first_party_backbone(vocab: Path) -> None:
    auto, off, on = TrainerConfig(max_steps=1), TrainerConfig(max_steps=1, channels_last=False), \
        TrainerConfig(max_steps=1, channels_last=True)
    assert auto.channels_last == "auto"
    chosen = {}
    for family, (name, options) in first_party(vocab).items():
        backbone = polygraft.create_backbone(name, **options)
        chosen[family] = auto.uses_channels_last(backbone)
        assert chosen[family] == polygraft.features.mostly_convolutional(backbone)  # the rule, not a list
        assert not off.uses_channels_last(backbone) and on.uses_channels_last(backbone)
    assert chosen == EXPECTED


def test_a_run_on_a_cnn_trains_channels_last_and_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from PIL import Image

    from polygraft.interfaces.datasource import ListSource
    from polygraft.training.trainer import Trainer

    task = polygraft.create_task("classification", backbone="timm", label_names=["a", "b"],
                                 backbone_options={"model_name": "test_resnet", "image_size": 32})
    images = [{"image": Image.new("RGB", (32, 32), (40 * i, 0, 0)), "label": "ab"[i % 2]} for i in range(8)]
    trainer = Trainer(TrainerConfig(max_steps=1, batch_size=4, progress=False, num_workers=0),
                      output_dir=tmp_path / "run")
    trainer.fit(task, train_data=ListSource(images))
    conv = next(m for m in task.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size != (1, 1))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert "channels-last memory format: on" in capsys.readouterr().err


def test_channels_last_takes_auto_true_or_false() -> None:
    with pytest.raises(ConfigError, match="auto, true or false"):
        TrainerConfig(max_steps=1, channels_last="yes")

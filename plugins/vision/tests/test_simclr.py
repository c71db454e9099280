"""SimCLR: NT-Xent, two views, and an exported backbone that fine-tuning accepts as weights."""

from __future__ import annotations

import pickle

import torch
from PIL import Image

import polygraft
from polygraft import Trainer, TrainerConfig
from polygraft_vision.simclr import nt_xent


def test_nt_xent_prefers_matching_views():
    z = torch.randn(8, 16)
    good, accuracy = nt_xent(z, z + 0.01 * torch.randn(8, 16), 0.1)
    bad, _ = nt_xent(z, torch.randn(8, 16), 0.1)
    assert float(good) < float(bad) and float(accuracy) == 1.0


def test_two_views_differ(catalog):
    objective = polygraft.create_objective("simclr", catalog=catalog, backbone="timm",
                                           backbone_options={"model_name": "test_resnet", "image_size": 32})
    pipe = pickle.loads(pickle.dumps(objective.data_pipeline(training=True)))
    image = Image.fromarray((torch.rand(48, 48, 3) * 255).byte().numpy())
    item = pipe.prepare({"image": image})
    assert not torch.equal(item["view1"]["pixel_values"], item["view2"]["pixel_values"])


def test_pretrain_then_finetune_from_export(catalog, tmp_path):
    data = polygraft.load_dataset("digits", catalog=catalog, split="test")
    unlabelled, val = data.split([32, 16], seed=0)
    objective = polygraft.create_objective("simclr", catalog=catalog, backbone="timm",
                                           backbone_options={"model_name": "test_resnet", "image_size": 32},
                                           projection_dim=16)
    result = Trainer(TrainerConfig(max_steps=3, batch_size=16, lr=1e-3, progress=False, drop_last=True),
                     output_dir=tmp_path / "pre").fit(objective, train_data=unlabelled, val_data=val)
    assert torch.isfinite(torch.tensor(result.metrics["val/loss"]))
    task = polygraft.create_task("classification", catalog=catalog, backbone="timm", weights=str(result.run_dir),
                                 label_names=data.label_names, backbone_options={"image_size": 32})
    trained = objective.backbone.state_dict()
    for key, value in task.backbone.state_dict().items():
        assert torch.equal(value, trained[key]), key

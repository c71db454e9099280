"""Objective ``wav2vec2``: masks over real frames, a training step, learning, deterministic validation, the
temperature schedule, and ``polygraft pretrain`` → ``polygraft finetune weights=<run>`` through the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml

import polygraft
from polygraft.errors import ConfigError, IncompatibleComponentsError
from polygraft.interfaces import ListSource
from polygraft_speech.wav2vec2_pretraining import conv_output_lengths, sample_masks

SMALL = {"mask_time_length": 4, "num_negatives": 8, "codevector_dim": 16, "proj_codevector_dim": 16,
         "num_codevectors_per_group": 16}
"""Objective options sized for the tiny backbone (spans of 4 frames over clips of 10-50 frames)."""


def clips(tone, seconds=(1.0, 0.3, 0.6, 0.45)) -> list[dict]:
    """Tones of different lengths and pitches, a little noise: a heavily padded batch."""
    rng = np.random.default_rng(0)
    return [{"audio": tone(s, 16000, frequency=220.0 * (i + 1)) + 0.01 * rng.standard_normal(round(s * 16000))
             .astype(np.float32), "sample_rate": 16000} for i, s in enumerate(seconds)]


def make(catalog, **options):
    return polygraft.create_objective("wav2vec2", backbone="wav2vec2", backbone_options={"size": "tiny"},
                                      catalog=catalog, **{**SMALL, **options})


def collate(objective, examples, *, training):
    pipe = objective.data_pipeline(training=training)
    return pipe.collate([pipe.prepare(example) for example in examples])


def test_frame_lengths_are_the_models(catalog):
    backbone = polygraft.create_backbone("wav2vec2", catalog=catalog, size="small")
    samples = torch.tensor([400, 401, 719, 720, 16000, 23456])
    config = backbone.config
    assert torch.equal(conv_output_lengths(samples, config.conv_kernel, config.conv_stride),
                       backbone.frame_lengths(samples))


def test_masks_and_negatives_stay_on_real_frames():
    lengths = [60, 12, 3, 30, 7]  # heavily padded: most rows are mostly padding
    for seed in range(40):
        mask, negatives = sample_masks(lengths, 60, mask_prob=0.65, mask_length=5, min_masks=2, num_negatives=10,
                                       seed=seed)
        real = torch.arange(60)[None, :] < torch.tensor(lengths)[:, None]
        assert not (mask & ~real).any()
        assert mask[0].sum() > 20 and mask[1].sum() >= 5 and not mask[2].any()  # 3 frames < one span
        counts = mask.sum(1)
        assert not (counts == 1).any()  # a lone masked frame would have no distractor
        rows, frames = mask.nonzero(as_tuple=True)
        drawn = negatives[rows, frames]  # (N, K) flat indices
        assert torch.equal(drawn // 60, rows[:, None].expand_as(drawn))  # from the same clip
        assert mask.flatten()[drawn].all()  # from its masked (real) frames
        assert not (drawn == (rows * 60 + frames)[:, None]).any()  # never the target itself
    state = np.random.get_state()[1].copy()
    sample_masks(lengths, 60, mask_prob=0.65, mask_length=5, min_masks=2, num_negatives=10, seed=1)
    assert np.array_equal(np.random.get_state()[1], state)  # numpy's global RNG is left as it was


def test_training_step_gives_finite_loss_and_gradients_everywhere(catalog, tone):
    torch.manual_seed(0)
    objective = make(catalog).train()
    batch = collate(objective, clips(tone), training=True)
    mask = batch["mask_time_indices"]
    real_lengths = objective.backbone.frame_lengths(batch["inputs"]["attention_mask"].sum(-1)).tolist()
    assert real_lengths[1] < real_lengths[0] // 3 and mask.shape[1] == real_lengths[0]
    assert all(not mask[row, n:].any() and mask[row, :n].any() for row, n in enumerate(real_lengths))
    output = objective(batch)
    assert output.loss.dtype == torch.float32 and torch.isfinite(output.loss) and output.loss > 0
    output.loss.backward()
    unused = [name for name, p in objective.named_parameters() if p.requires_grad and p.grad is None]
    assert unused == []  # DDP without find_unused_parameters: every trainable parameter gets a gradient
    model = objective.backbone.model
    for tensor in (model.masked_spec_embed, model.feature_extractor.conv_layers[0].conv.weight,
                   model.encoder.layers[0].attention.q_proj.weight, objective.quantizer.codevectors,
                   objective.quantizer.weight_proj.weight, objective.project_hid.weight):
        assert tensor.grad is not None and tensor.grad.abs().sum() > 0 and torch.isfinite(tensor.grad).all()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = objective(batch)
    assert mixed.loss.dtype == torch.float32 and torch.isfinite(mixed.loss)


def test_a_batch_too_short_to_mask_gives_a_zero_contrastive_loss(catalog, tone):
    objective = make(catalog, mask_time_length=10).train()
    batch = collate(objective, clips(tone, (0.15, 0.1)), training=True)  # 6 and 4 frames
    assert not batch["mask_time_indices"].any() and batch["meta"]["masked_frames"] == 0
    output = objective(batch)
    assert torch.isfinite(output.loss) and float(output.outputs["contrastive_sum"]) == 0.0
    output.loss.backward()
    assert all(p.grad is not None for p in objective.parameters() if p.requires_grad)


def test_validation_is_deterministic(catalog, tone):
    torch.manual_seed(0)
    objective = make(catalog)
    examples = clips(tone)
    first, second = (collate(objective, examples, training=False) for _ in range(2))
    assert torch.equal(first["mask_time_indices"], second["mask_time_indices"])
    assert torch.equal(first["sampled_negative_indices"], second["sampled_negative_indices"])
    other = collate(objective, examples[:3], training=False)
    assert not torch.equal(other["mask_time_indices"], first["mask_time_indices"][:3])  # seeded per batch
    trained = [collate(objective, examples, training=True)["mask_time_indices"] for _ in range(3)]
    assert not all(torch.equal(trained[0], m) for m in trained[1:])  # training masks are fresh

    def evaluate():
        objective.eval()
        objective.reset_metrics()
        with torch.no_grad():
            for batch in (first, other):
                objective.update_metrics(batch, objective(batch))
        return objective.compute_metrics()

    once, again = evaluate(), evaluate()
    assert once == again
    assert set(once) == {"contrastive_loss", "diversity_loss", "codebook_perplexity", "accuracy",
                         "masked_fraction", "gumbel_temperature"}
    assert 1.0 <= once["codebook_perplexity"] <= 2 * 16 and 0.0 <= once["accuracy"] <= 1.0
    assert 0.2 < once["masked_fraction"] < 0.9


def test_loss_goes_down_on_a_fixed_set(catalog, tiny_digits, digits_cache):
    torch.manual_seed(0)
    data = polygraft.load_dataset("spoken-digits", catalog=catalog, split="train", cache_dir=str(digits_cache),
                                  **tiny_digits)
    objective = make(catalog, max_gumbel_temperature=1.0, min_gumbel_temperature=1.0).train()
    fixed = objective.data_pipeline(training=False)  # the same masks and negatives every time: a fixed set
    prepared = [fixed.prepare(data[i]) for i in range(len(data))]
    batches = [fixed.collate(prepared[:10]), fixed.collate(prepared[10:20])]
    optimizer = torch.optim.AdamW(objective.parameters(), lr=3e-3)
    losses, contrastive = [], []
    for step in range(30):
        output = objective(batches[step % 2])
        optimizer.zero_grad()
        output.loss.backward()
        optimizer.step()
        losses.append(float(output.loss.detach()))
        contrastive.append(float(output.outputs["contrastive_sum"] / output.outputs["masked"]))
    assert np.mean(losses[-4:]) < 0.85 * np.mean(losses[:4]), losses
    assert np.mean(contrastive[-4:]) < np.log(SMALL["num_negatives"] + 1) - 0.3, contrastive  # better than chance


def test_temperature_anneals_once_per_optimizer_step(catalog, tone, tmp_path):
    torch.manual_seed(0)
    objective = make(catalog, max_gumbel_temperature=2.0, min_gumbel_temperature=0.5,
                     gumbel_temperature_decay=0.5)
    data = ListSource(clips(tone) * 2)
    trainer = polygraft.Trainer(polygraft.TrainerConfig(max_steps=3, batch_size=2, grad_accum=2, progress=False,
                                                        lr=1e-3), output_dir=tmp_path / "run")
    result = trainer.fit(objective, train_data=data, val_data=data)
    assert objective.updates == 3  # optimizer steps, not micro-batches
    torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1).step()  # an optimizer without the codebook
    assert objective.updates == 3
    assert result.metrics["val/gumbel_temperature"] == pytest.approx(max(2.0 * 0.5 ** objective.updates, 0.5))
    restored = make(catalog, max_gumbel_temperature=2.0, min_gumbel_temperature=0.5, gumbel_temperature_decay=0.5)
    restored.load_state_dict(objective.state_dict())  # what a resumed run does with its checkpoint
    assert restored.updates == 3 and restored.gumbel_temperature == objective.gumbel_temperature
    saved = json.loads((tmp_path / "run" / "model" / "polygraft.json").read_text())
    assert saved["kind"] == "backbone" and saved["backbone"]["name"] == "wav2vec2"


def test_bad_options_and_backbones(catalog):
    with pytest.raises(ConfigError, match="mask_time_prob must be in"):
        make(catalog, mask_time_prob=0.0)
    with pytest.raises(ConfigError, match="codevector_dim 15 must be a multiple"):
        make(catalog, codevector_dim=15)
    with pytest.raises(IncompatibleComponentsError, match="HuBERT"):
        polygraft.create_objective("wav2vec2", backbone="wav2vec2", catalog=catalog,
                                   backbone_options={"size": "tiny", "model_type": "hubert"})


def test_pretrain_then_finetune_through_the_cli(tiny_digits, digits_cache, tmp_path):
    from polygraft.cli import main

    data = {"dataset": "spoken-digits", "cache_dir": str(digits_cache), **tiny_digits}
    pretrain = {"objective": "wav2vec2", "backbone": "wav2vec2", "backbone_options": {"size": "tiny"},
                "objective_options": SMALL,
                "data": {"train": {**data, "split": "train"}, "val": {**data, "split": "val"}},
                "trainer": {"max_steps": 6, "batch_size": 5, "lr": 3e-3, "progress": False},
                "output_dir": str(tmp_path / "pretrained")}
    (tmp_path / "pretrain.yaml").write_text(yaml.safe_dump(pretrain))
    assert main(["pretrain", str(tmp_path / "pretrain.yaml"), "trainer.seed=1"]) == 0
    results = json.loads((tmp_path / "pretrained" / "results.json").read_text())
    assert results["train/steps"] == 6 and results["val/contrastive_loss"] > 0
    finetune = {"task": "classification", "backbone": "wav2vec2", "weights": str(tmp_path / "pretrained"),
                "data": {"train": {**data, "split": "train"}, "val": {**data, "split": "val"}},
                "trainer": {"max_steps": 2, "batch_size": 5, "lr": 1e-4, "progress": False},
                "output_dir": str(tmp_path / "finetuned")}
    (tmp_path / "finetune.yaml").write_text(yaml.safe_dump(finetune))
    assert main(["finetune", str(tmp_path / "finetune.yaml")]) == 0

    pretrained = polygraft.load(tmp_path / "pretrained").model
    finetuned = polygraft.load(tmp_path / "finetuned").backbone.model
    fresh = polygraft.create_backbone("wav2vec2", size="tiny").model
    # the mask embedding trains in pretraining only: fine-tuning keeps it exactly
    assert torch.equal(finetuned.masked_spec_embed, pretrained.masked_spec_embed)
    assert not torch.equal(finetuned.masked_spec_embed, fresh.masked_spec_embed)
    for name in ("feature_projection.projection.weight", "encoder.layers.1.feed_forward.output_dense.weight"):
        tuned, start, other = (dict(m.named_parameters())[name] for m in (finetuned, pretrained, fresh))
        assert (tuned - start).norm() < 0.1 * (other - start).norm()  # fine-tuning started from the pretraining

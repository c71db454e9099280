"""The builtin plugin: registers core's own components exactly the way a third-party plugin would.

Specs only (import-free): the modality-free tasks, the fine-tuning strategies, the trainer callbacks recipes can
name, the modalities core knows, and a toy backbone plus synthetic data for tests and tutorials.
"""

from __future__ import annotations

from polygraft.hookspecs import Register, hookimpl
from polygraft.specs import (
    BUILTIN_MODALITIES,
    BackboneSpec,
    CallbackSpec,
    DatasetSpec,
    ModalitySpec,
    StrategySpec,
    TaskSpec,
)

_INPUT_KEYS = {"text": "text", "vision": "image", "speech": "audio", "any": "x"}


@hookimpl
def polygraft_register_modalities(register: Register) -> None:
    for name in BUILTIN_MODALITIES:
        register(ModalitySpec(name=name, input_key=_INPUT_KEYS[name],
                              description="components that work on any input" if name == "any" else ""))
    register(ModalitySpec(name="multimodal", input_key="fields",
                          description="several fields per example (text, images, audio, numbers), read by the "
                                      "branches of a fusion backbone"))


@hookimpl
def polygraft_register_backbones(register: Register) -> None:
    register(BackboneSpec(
        name="toy", factory="polygraft.builtin.toy:create_toy_backbone", modality="any",
        produces=("pooled", "sequence"),
        description="Tiny residual MLP over float vectors or sequences (tests, tutorials).",
    ))
    register(BackboneSpec(
        name="fusion", factory="polygraft.fusion.backbone:create_fusion_backbone", modality="multimodal",
        produces=("pooled",),
        description="Multimodal fusion of branches built from any registered backbones (branches: {NAME: {backbone, "
                    "weights, backbone_options, fields}}); fusion: mlp | transformer | concat; missing fields use a "
                    "learned embedding (modality_dropout trains for it). See docs/fusion.md.",
    ))
    register(BackboneSpec(
        name="columns", factory="polygraft.builtin.columns:create_columns_backbone", modality="any",
        produces=("pooled",),
        description="Numbers and categories of a table row (numbers: [...], categories: [...]): standardised "
                    "numbers and category embeddings, fitted on the training split, into a residual MLP.",
    ))


@hookimpl
def polygraft_register_datasets(register: Register) -> None:
    register(DatasetSpec(
        name="synthetic-classification", factory="polygraft.builtin.synthetic:SyntheticClassification",
        target="class", description="Gaussian clusters made on the fly; learnable in a few steps.",
    ))
    fusion = "polygraft.fusion"
    register(DatasetSpec(
        name="multimodal-manifest", factory=f"{fusion}.manifest:create_multimodal_manifest", target="class",
        description="CSV / TSV / JSONL whose columns are fields by type (text, image, audio, number, category; paths "
                    "relative to the file) plus label column(s): the data of a fusion model.",
        modality="multimodal",
    ))
    register(DatasetSpec(
        name="shape-captions", factory=f"{fusion}.generated.shape_captions:create_shape_captions", target="class",
        description="Generated: a coloured shape and a caption; label = whether the caption describes the image "
                    "(each modality alone is at chance).",
        modality="multimodal", metadata={"input_key": "image"},
    ))
    register(DatasetSpec(
        name="av-digits", factory=f"{fusion}.generated.av_digits:create_av_digits", target="class",
        description="Generated: an occluded MNIST digit image with a noisy spoken digit of the same class from "
                    "unseen voices (composes mnist-5k and spoken-digits); each modality alone is weak.",
        modality="multimodal", metadata={"input_key": "image"},
    ))
    register(DatasetSpec(
        name="review-numbers", factory=f"{fusion}.generated.review_numbers:create_review_numbers",
        target="class",
        description="Generated: Rotten Tomatoes reviews with two numeric columns; the label depends on both (or on "
                    "the text alone: depends_on: text). Composes rotten-tomatoes.",
        modality="multimodal", metadata={"input_key": "review"},
    ))
    register(DatasetSpec(
        name="keyword-sentences", factory="polygraft.builtin.keywords:KeywordSentences", modality="text",
        target="class", description="Generated sentences where one keyword decides the label (a known answer "
                                    "for explanations); examples carry the keyword and its word index.",
    ))


@hookimpl
def polygraft_register_tasks(register: Register) -> None:
    register(TaskSpec(
        name="classification", factory="polygraft.tasks.classification:ClassificationTask",
        consumes="pooled", target="class", metric="accuracy",
        description="One label per example from pooled features: accuracy, macro-F1, top-5, confusion matrix.",
    ))
    register(TaskSpec(
        name="token-classification", factory="polygraft.tasks.token_classification:TokenClassificationTask",
        consumes="sequence", target="tags", metric="f1",
        description="One BIO tag per word from sequence features (NER): entity-level precision/recall/F1 "
                    "(seqeval), entity spans with character offsets. Needs polygraft[ner].",
    ))
    register(TaskSpec(
        name="question-answering", factory="polygraft.tasks.question_answering:QuestionAnsweringTask",
        consumes="sequence", target="span", metric="f1", aliases=("qa",),
        description="Extractive answer spans from sequence features (SQuAD v1.1/v2.0): long contexts in "
                    "overlapping windows, spans mapped back to characters, official exact match and F1, "
                    "a no-answer threshold for unanswerable questions.",
    ))
    register(TaskSpec(
        name="ctc", factory="polygraft.tasks.ctc:CTCTask", consumes="sequence", target="transcript", metric="wer",
        description="Character sequences from sequence features with CTC (speech recognition): vocabulary from the "
                    "training transcripts, greedy or beam decoding, WER and CER (torchmetrics).",
    ))
    register(TaskSpec(
        name="detection", factory="polygraft.tasks.detection:DetectionTask",
        consumes="maps", target="boxes", metric="map_50",
        description="Boxes from multi-scale feature maps: torchvision FPN + FCOS head; COCO mAP@[.5:.95] and "
                    "mAP@.5 (torchmetrics, pycocotools). Needs polygraft[detection].",
    ))
    register(TaskSpec(
        name="regression", factory="polygraft.tasks.regression:RegressionTask", consumes="pooled", target="number",
        metric="rmse",
        description="One or more numbers per example from pooled features: MSE or Huber loss on targets "
                    "standardised on the training split (saved with the model); RMSE, MAE, R².",
    ))
    register(TaskSpec(
        name="multilabel-classification", factory="polygraft.tasks.multilabel:MultilabelTask", consumes="pooled",
        target="labels", metric="micro_f1",
        description="Any number of labels per example from pooled features: binary cross-entropy, a decision "
                    "threshold; micro/macro F1, mAP, exact match.",
    ))
    register(TaskSpec(
        name="segmentation", factory="polygraft.tasks.segmentation:SegmentationTask",
        consumes="maps", target="mask", metric="miou",
        description="Semantic segmentation from multi-scale feature maps: FPN decoder or torchvision's DeepLabV3 "
                    "head, ignore index, mIoU and pixel accuracy from a confusion matrix, mask overlay "
                    "(predict --draw). Needs polygraft[segmentation].",
    ))
    register(TaskSpec(
        name="metric-learning", factory="polygraft.tasks.metric_learning:MetricLearningTask",
        consumes="pooled", target="identity", metric="eer",
        description="Open-set verification and retrieval (faces, speakers): embeddings trained with ArcFace, "
                    "CosFace or contrastive loss (pytorch-metric-learning), evaluated on unseen identities: ROC-AUC, "
                    "EER, TAR@FAR, rank-1; threshold chosen on validation; predict RUN a b compares a pair.",
    ))


@hookimpl
def polygraft_register_strategies(register: Register) -> None:
    module = "polygraft.finetune"
    register(StrategySpec(
        name="full", factory=f"{module}.freezing:FullStrategy",
        description="Train every weight of backbone and head (the default); trainable_layers=N freezes all but "
                    "the top N backbone layer groups.",
    ))
    register(StrategySpec(
        name="linear-probe", factory=f"{module}.freezing:LinearProbeStrategy", aliases=("probe",),
        description="Freeze the backbone (batch norms in eval), train the head; combines with lora.",
    ))
    register(StrategySpec(
        name="gradual-unfreeze", factory=f"{module}.freezing:GradualUnfreezeStrategy",
        description="Start with the head only, unfreeze backbone layer groups top-down at milestones (ULMFiT).",
    ))
    register(StrategySpec(
        name="layer-wise-lr-decay", factory=f"{module}.llrd:LayerWiseLRDecayStrategy", aliases=("llrd",),
        description="LLRD: layer group i of L gets lr * decay^(L-i), the head gets lr; no decay on norms/biases.",
    ))
    register(StrategySpec(
        name="lora", factory=f"{module}.lora:LoraStrategy",
        description="LoRA adapters (peft) on the backbone's attention projections, merged into the weights at the end.",
    ))
    register(StrategySpec(
        name="ema", factory=f"{module}.ema:EMAStrategy",
        description="Exponential moving average of the weights, used for validation and the saved model.",
    ))
    register(StrategySpec(
        name="per-branch", factory="polygraft.fusion.strategy:PerBranchStrategy",
        description="Strategies and a learning-rate multiplier for single branches of a fusion model: "
                    "branches: {image: {strategy: linear-probe}, text: {strategy: lora, lr_multiplier: 0.5}}.",
    ))
    register(StrategySpec(
        name="distill", factory=f"{module}.distill:DistillStrategy", aliases=("distillation",),
        description="Knowledge distillation from a trained teacher run (teacher=RUN_DIR): KL on temperature-softened "
                    "outputs plus the labels, optional pooled-feature matching; the teacher's outputs are computed "
                    "once and kept with the input cache.",
    ))


@hookimpl
def polygraft_register_callbacks(register: Register) -> None:
    module = "polygraft.builtin.callbacks"
    register(CallbackSpec(
        name="early-stopping", factory=f"{module}:EarlyStopping",
        description="Stop when a monitored validation metric stops improving (monitor, mode, patience, min_delta).",
    ))
    register(CallbackSpec(
        name="best-checkpoint", factory=f"{module}:BestCheckpoint",
        description="Keep checkpoints/best.pt of the best validation (monitor, mode).",
    ))
    register(CallbackSpec(
        name="tensorboard", factory="polygraft.builtin.trackers:TensorBoardTracker",
        description="TensorBoard event files in RUN/tensorboard: metrics.jsonl, the recipe, results, plots (log_dir).",
    ))
    register(CallbackSpec(
        name="mlflow", factory="polygraft.builtin.trackers:MLflowTracker",
        description="An MLflow run (file store RUN/mlruns by default): metrics, recipe, results, plots "
                    "(tracking_uri, experiment, run_name).",
    ))

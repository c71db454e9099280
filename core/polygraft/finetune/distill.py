"""Knowledge distillation: a student (any backbone, any modality) learns from a trained teacher run's soft targets.

The loss of each training batch is ``(1 - alpha) * task_loss + alpha * T² * KL(teacher_T || student_T)``, where
``X_T = softmax(logits / T)`` (Hinton et al. 2015; the same form as torchdistill's ``KDLoss`` and Hugging Face's
distillation guide). With ``features: w > 0`` the student's pooled features also learn to match the teacher's
(mean squared error, weight ``w``): directly when both are as wide, else through a learned linear map from the
student's width to the teacher's (FitNets' regressor), which is trained with the student and dropped before the
student is saved.

The teacher is a finished ``polygraft finetune`` run of the same task with the same labels (in any order: its
outputs are reordered to the student's); anything else is refused before training, naming both label sets. It
reads each training example through its own evaluation preprocessing (its tokenizer, image size, mel settings),
so teacher and student may use different inputs of the same raw example. Its outputs are computed once, before the
first step, and kept with the input cache (:class:`~polygraft.interfaces.ExampleOutputs`): in memory, and on disk
so that other seeds or tuning trials with the same teacher and data read them back. The teacher never trains (no
gradients, eval mode, not in the optimizer), is no part of the student module and is not saved with it.

Example:
    >>> from polygraft.finetune.distill import kd_loss
    >>> import torch
    >>> logits = torch.tensor([[2.0, 0.0]])
    >>> float(kd_loss(logits, logits, temperature=2.0))
    0.0
"""

from __future__ import annotations

import gc
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.nn import functional as F

from polygraft.errors import ConfigError, IncompatibleComponentsError, TrainingError
from polygraft.features import Batch
from polygraft.interfaces import ExampleOutputs, FinetuneStrategy, StepOutput, Task, TrainingModule

if TYPE_CHECKING:
    from polygraft.plugins import Catalog

PROJECTION = "distill_projection"
"""Name of the student → teacher feature map while training with ``features`` (removed before saving)."""


def kd_loss(student: torch.Tensor, teacher: torch.Tensor, *, temperature: float) -> torch.Tensor:
    """``T² · KL(softmax(teacher / T) ‖ softmax(student / T))``, averaged over the batch."""
    t = float(temperature)
    return F.kl_div(F.log_softmax(student.float() / t, dim=-1), F.log_softmax(teacher.float() / t, dim=-1),
                    reduction="batchmean", log_target=True) * (t * t)


class TeacherOutputs(ExampleOutputs):
    """The teacher's logits (reordered to the student's labels) and, for feature matching, its pooled features."""

    name = "teacher"

    def __init__(self, strategy: DistillStrategy) -> None:
        self.strategy = strategy
        self.pipeline = strategy.teacher.data_pipeline(training=False)

    def compute(self, batch: Batch) -> dict[str, torch.Tensor]:
        teacher = self.strategy.teacher
        pooled: list[torch.Tensor] = []
        hook = None
        if self.strategy.features:
            hook = teacher.backbone.register_forward_hook(lambda module, args, out: pooled.append(out.pool()))
        try:
            exported = teacher.export_outputs(batch["inputs"])
        finally:
            if hook is not None:
                hook.remove()
        logits = exported.get("logits") if isinstance(exported, Mapping) else None
        size = len(self.strategy.teacher_labels)
        if not isinstance(logits, torch.Tensor) or logits.dim() != 2 or logits.shape[1] != size:
            shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
            raise IncompatibleComponentsError(
                f"distill: the teacher's task {self.strategy.teacher_task!r} gives {shape} logits; distillation needs "
                f"one logit per label for each example, (batch, {size}): tasks that classify whole examples")
        outputs = {"logits": logits[:, self.strategy.order_of_labels.to(logits.device)]}
        if self.strategy.features:
            outputs["pooled"] = pooled[-1]
        return outputs

    def fingerprint(self) -> str | None:
        return self.strategy.teacher_fingerprint()

    def to(self, device: torch.device) -> None:
        self.strategy.teacher.to(device)

    def release(self) -> None:
        self.strategy.release_teacher()


class DistillStrategy(FinetuneStrategy):
    """Learn from a trained teacher run's soft targets as well as from the labels.

    Options:
        teacher: a finished run directory (or its ``model/``) of the same task and labels.
        temperature: softens both distributions (default 2; Hinton et al. use 1-20, most use 2-5).
        alpha: weight of the distillation term; ``1 - alpha`` weighs the task's own loss (default 0.5).
        features: weight of pooled-feature matching (mean squared error), 0 = off (default).

    ``order`` is 90: it sets up after the strategies that freeze or add adapters, so the feature map it may add
    trains whatever they froze.
    """

    name = "distill"
    order = 90

    def __init__(self, *, teacher: str, temperature: float = 2.0, alpha: float = 0.5, features: float = 0.0,
                 catalog: Catalog | None = None) -> None:
        if not isinstance(teacher, str | Path) or not str(teacher).strip():
            raise ConfigError(f"distill: teacher must be the path of a finished polygraft finetune run, got {teacher!r}")
        if not 0 < float(temperature) <= 100:
            raise ConfigError(f"distill: temperature must be in (0, 100], got {temperature}")
        if not 0 <= float(alpha) <= 1:
            raise ConfigError(f"distill: alpha (the weight of the teacher's soft targets) must be in [0, 1], got {alpha}")
        if not 0 <= float(features) <= 1000:
            raise ConfigError(f"distill: features (the weight of feature matching) must be in [0, 1000], got {features}")
        self.temperature, self.alpha, self.features = float(temperature), float(alpha), float(features)
        self.catalog = catalog
        self.model_dir, config = _teacher_config(str(teacher))
        self.teacher_path = str(teacher)
        self.teacher_task = str(config["task"])
        self.teacher_labels = [str(name) for name in config["label_names"]]
        self._config = config
        self._teacher: Task | None = None
        self.order_of_labels = torch.arange(len(self.teacher_labels))
        self._student_pooled: torch.Tensor | None = None
        self._hook: Any = None
        self._fingerprint: str | None = None

    # ------------------------------------------------------------------ the teacher
    @property
    def teacher(self) -> Task:
        """The teacher model (loaded on first use, frozen, in eval mode)."""
        if self._teacher is None:
            with torch.random.fork_rng(devices=[]):  # building draws initial weights: leave training's numbers be
                self._teacher = _load_teacher(self.model_dir, self._config, self.catalog)
        return self._teacher

    def release_teacher(self) -> None:
        """Drop the teacher once its outputs are kept (they are all training needs)."""
        self._teacher = None
        gc.collect()

    def teacher_fingerprint(self) -> str:
        """The teacher's description and weights, plus what changes its kept outputs (label order, features)."""
        if self._fingerprint is None:
            import hashlib

            from polygraft.fingerprint import digest
            from polygraft.model_io import weights_file

            hasher = hashlib.sha256()
            with open(weights_file(self.model_dir), "rb") as handle:
                for block in iter(lambda: handle.read(1 << 22), b""):
                    hasher.update(block)
            weights = hasher.hexdigest()
            self._fingerprint = digest({"config": self._config, "weights": weights, "features": bool(self.features),
                                        "order": self.order_of_labels.tolist()})
        return self._fingerprint

    # ------------------------------------------------------------------ the strategy hooks
    def setup(self, module: TrainingModule) -> None:
        self._check_student(module)
        if self.features:
            student_dim, teacher_dim = int(module.backbone.feature_dim), int(self.teacher.backbone.feature_dim)
            if student_dim != teacher_dim and not hasattr(module, PROJECTION):
                module.add_module(PROJECTION, nn.Linear(student_dim, teacher_dim))
            self._hook = module.backbone.register_forward_hook(self._keep_student_features)

    def example_outputs(self, module: TrainingModule) -> ExampleOutputs:
        return TeacherOutputs(self)

    def training_loss(self, module: TrainingModule, batch: Batch, output: StepOutput) -> StepOutput:
        kept = (batch.get("example_outputs") or {}).get(TeacherOutputs.name)
        if kept is None:
            raise TrainingError("distill: the batch carries no teacher outputs; the trainer computes them before "
                                "training when the strategy asks (FinetuneStrategy.example_outputs)")
        student = output.outputs
        teacher = kept["logits"]
        if not isinstance(student, torch.Tensor) or student.shape != teacher.shape:
            shape = tuple(student.shape) if isinstance(student, torch.Tensor) else type(student).__name__
            raise IncompatibleComponentsError(f"distill: the student's outputs are {shape}, the teacher's "
                                              f"{tuple(teacher.shape)}; distillation needs one logit per label")
        loss = (1 - self.alpha) * output.loss + self.alpha * kd_loss(student, teacher, temperature=self.temperature)
        if self.features:
            pooled = self._student_pooled
            self._student_pooled = None
            if pooled is None:
                raise TrainingError("distill: the student's backbone ran no forward for this batch")
            projection = getattr(module, PROJECTION, None)
            guess = projection(pooled.float()) if projection is not None else pooled.float()
            loss = loss + self.features * F.mse_loss(guess, kept["pooled"].float())
        return StepOutput(loss=loss, outputs=output.outputs)

    def finalize(self, module: TrainingModule) -> None:
        """Remove the feature hook and the feature map: the saved student is the task's model alone."""
        if self._hook is not None:
            self._hook.remove()
            self._hook = None
        if hasattr(module, PROJECTION):
            delattr(module, PROJECTION)
        self.release_teacher()

    # ------------------------------------------------------------------ pieces
    def _keep_student_features(self, backbone: nn.Module, args: Any, features: Any) -> None:
        if backbone.training:
            self._student_pooled = features.pool()

    def _check_student(self, module: TrainingModule) -> None:
        """Same task, same label set (any order): anything else is refused here, before training."""
        student_task = module.spec_name or type(module).__name__
        if not _same_task(self.catalog, self.teacher_task, student_task):
            raise IncompatibleComponentsError(
                f"distill: the teacher {self.teacher_path} was trained for task {self.teacher_task!r}, the student "
                f"is {student_task!r}; a teacher must solve the student's task. Teacher labels: "
                f"{self.teacher_labels}; student labels: {list(module.label_names)}")
        student_labels = [str(name) for name in module.label_names]
        if sorted(student_labels) != sorted(self.teacher_labels) or len(set(student_labels)) != len(student_labels):
            only_teacher = sorted(set(self.teacher_labels) - set(student_labels))
            only_student = sorted(set(student_labels) - set(self.teacher_labels))
            raise IncompatibleComponentsError(
                f"distill: the teacher {self.teacher_path} predicts other labels than the student. Teacher labels: "
                f"{self.teacher_labels}; student labels: {student_labels} (only the teacher's: {only_teacher}; only "
                f"the student's: {only_student}). Train the teacher on the same labels, or list them in the "
                "student recipe's labels:")
        position = {name: index for index, name in enumerate(self.teacher_labels)}
        self.order_of_labels = torch.tensor([position[name] for name in student_labels], dtype=torch.long)


def _teacher_config(teacher: str) -> tuple[Path, dict[str, Any]]:
    """The teacher's model directory and ``polygraft.json``; a clear error when it is not a finished task run."""
    from polygraft.model_io import find_model_dir, read_model_config
    from polygraft.run import RunDirectory

    path = Path(teacher)
    if not path.exists():
        raise ConfigError(f"distill: teacher {teacher!r} does not exist; give the folder of a finished `polygraft "
                          "finetune` run (output_dir of the teacher's recipe)")
    RunDirectory(path.parent if path.name == "model" else path, enabled=False).check_finished()
    model_dir = find_model_dir(path)
    if model_dir is None:
        raise ConfigError(f"distill: {teacher} holds no model (no polygraft.json in it or in {path / 'model'}); give "
                          "the folder of a finished `polygraft finetune` run")
    config = read_model_config(model_dir)
    if config["kind"] != "task":
        raise ConfigError(f"distill: {teacher} holds a pretrained backbone ({config['backbone']['name']}), not a "
                          "fine-tuned task; a teacher must be a `polygraft finetune` run of the student's task")
    return model_dir, config


def _load_teacher(model_dir: Path, config: dict[str, Any], catalog: Catalog | None) -> Task:
    """Rebuild the teacher from its run (as ``polygraft.load`` does), frozen and in eval mode."""
    from polygraft.components import build
    from polygraft.model_io import backbone_options, load_weights_into, weights_file

    if catalog is None:
        from polygraft.plugins import build_catalog

        catalog = build_catalog()
    where = f"{model_dir}/polygraft.json"
    backbone = build(catalog, "backbone", config["backbone"]["name"], backbone_options(config, model_dir),
                     where=where, weights=None)
    teacher = build(catalog, "task", config["task"], config.get("options", {}), where=where, backbone=backbone,
                    label_names=config["label_names"])
    if not isinstance(teacher, Task):
        raise ConfigError(f"distill: {model_dir} rebuilds as {type(teacher).__name__}, not a task")
    load_weights_into(teacher, weights_file(model_dir))
    teacher.eval()
    teacher.requires_grad_(False)
    return teacher


def _same_task(catalog: Catalog | None, teacher: str, student: str) -> bool:
    if teacher == student:
        return True
    if catalog is None:
        return False
    try:
        return catalog.get("task", teacher) is catalog.get("task", student)
    except Exception:  # an unknown name: they differ
        return False

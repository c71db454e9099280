"""The plugin contract: everything a plugin implements or receives, and nothing else.

A plugin subclasses :class:`Backbone` (with a :class:`Preprocessor`), :class:`DataSource`, :class:`Task` (with a
:class:`Head` and a :class:`DataPipeline`), :class:`PretrainingObjective`, :class:`FinetuneStrategy` or
:class:`Callback`; the trainer hands callbacks and strategies a :class:`TrainerView`. A strategy that learns from
another model's outputs (distillation) describes them as :class:`ExampleOutputs`. Import these names from
``polygraft.interfaces`` itself: the submodules are an implementation detail.

Example:
    >>> from polygraft.interfaces import Backbone, Callback, DataSource, TrainerView
    >>> issubclass(Backbone, object) and hasattr(Callback, "on_train_step_end")
    True
"""

from polygraft.interfaces.attribution import AttributionHooks
from polygraft.interfaces.backbone import Backbone
from polygraft.interfaces.callback import Callback, TrainerView
from polygraft.interfaces.datasource import (
    SPLITS,
    DataSource,
    InMemorySource,
    ListSource,
    SubsetSource,
    check_split,
    files_fingerprint,
    take_split,
)
from polygraft.interfaces.head import Head
from polygraft.interfaces.objective import PretrainingObjective
from polygraft.interfaces.outputs import ExampleOutputs
from polygraft.interfaces.pipeline import DataPipeline
from polygraft.interfaces.preprocessor import Preprocessor
from polygraft.interfaces.strategy import FinetuneStrategy
from polygraft.interfaces.task import LabelEncoder, Task
from polygraft.interfaces.training_module import StepOutput, TrainingModule

__all__ = [
    "SPLITS",
    "AttributionHooks",
    "Backbone",
    "Callback",
    "DataPipeline",
    "DataSource",
    "ExampleOutputs",
    "FinetuneStrategy",
    "Head",
    "InMemorySource",
    "LabelEncoder",
    "ListSource",
    "Preprocessor",
    "PretrainingObjective",
    "StepOutput",
    "SubsetSource",
    "Task",
    "TrainerView",
    "TrainingModule",
    "check_split",
    "files_fingerprint",
    "take_split",
]

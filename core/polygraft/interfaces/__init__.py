"""Base classes every component implements: backbones, heads, tasks, objectives, data sources, preprocessors."""

from polygraft.interfaces.attribution import AttributionHooks
from polygraft.interfaces.backbone import Backbone
from polygraft.interfaces.datasource import DataSource, InMemorySource, ListSource, files_fingerprint
from polygraft.interfaces.head import Head
from polygraft.interfaces.objective import PretrainingObjective
from polygraft.interfaces.pipeline import DataPipeline
from polygraft.interfaces.preprocessor import Preprocessor
from polygraft.interfaces.task import Task
from polygraft.interfaces.training_module import StepOutput, TrainingModule

__all__ = [
    "AttributionHooks",
    "Backbone",
    "DataPipeline",
    "DataSource",
    "Head",
    "InMemorySource",
    "ListSource",
    "Preprocessor",
    "PretrainingObjective",
    "StepOutput",
    "Task",
    "TrainingModule",
    "files_fingerprint",
]

"""ExampleOutputs: what a frozen model says about each training example, computed once before training.

A strategy that learns from another model (a distillation teacher) returns one from
:meth:`~polygraft.interfaces.FinetuneStrategy.example_outputs`. Before the first training step the trainer reads
every training example once, prepares it with :attr:`ExampleOutputs.pipeline` (the frozen model's own evaluation
preprocessing, from the raw example: the student's augmentation never reaches it), collates batches and calls
:meth:`ExampleOutputs.compute` on them without gradients. The results are kept per example with the input cache:
in memory, and on disk under the input cache's folder when the source, the pipeline and the model can all
fingerprint themselves, so a second run with the same model and data (another seed, a tuning trial) reads them
back instead of running the model again. Each training batch then carries them as
``batch["example_outputs"][name][key]``, ``(B, ...)`` tensors on the device, in the order of the batch's examples.

Example:
    >>> import torch
    >>> from polygraft.interfaces import DataPipeline, ExampleOutputs
    >>> class Doubled(ExampleOutputs):
    ...     name = "doubled"
    ...     def compute(self, batch):
    ...         return {"x": batch["inputs"]["x"] * 2}
    >>> Doubled().compute({"inputs": {"x": torch.ones(2, 3)}})["x"].shape
    torch.Size([2, 3])
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

    from polygraft.features import Batch
    from polygraft.interfaces.pipeline import DataPipeline


class ExampleOutputs:
    """A frozen model's outputs for every training example (see the module docstring).

    Set :attr:`name` and :attr:`pipeline`, implement :meth:`compute`; :meth:`fingerprint` lets the outputs be kept
    on disk, :meth:`to` moves the model to the trainer's device, :meth:`release` frees it once everything is
    computed.
    """

    #: the key of these outputs in ``batch["example_outputs"]`` (one per strategy)
    name: str = "outputs"
    #: prepares a raw example for the frozen model and collates such examples (its evaluation pipeline)
    pipeline: DataPipeline | None = None

    def compute(self, batch: Batch) -> dict[str, torch.Tensor]:
        """The outputs of one collated batch (on the trainer's device): named tensors of ``(B, ...)``, the same
        shape after the batch dimension for every example. Called under ``torch.no_grad()``."""
        raise NotImplementedError

    def fingerprint(self) -> str | None:
        """A text that changes whenever the outputs for the same prepared example could (the model's weights and
        settings), or ``None``: then the outputs are kept in memory only, and computed again by every run."""
        return None

    def to(self, device: torch.device) -> None:
        """Move the frozen model to ``device`` before :meth:`compute` is called (default: nothing to move)."""

    def release(self) -> None:
        """Called once every output is computed or read back: free the model (default: nothing)."""

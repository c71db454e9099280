"""Raw examples to trace and check an export with: the conformance kit's deliberately uneven defaults for the
builtin input keys (texts of different lengths, images of different sizes, clips of different durations), else a
few examples of the run's own data.

Example:
    >>> import polygraft
    >>> from polygraft.export.samples import sample_examples
    >>> task = polygraft.create_task("classification", backbone="toy", num_classes=2,
    ...                              backbone_options={"in_features": 3})
    >>> len(sample_examples(task))
    4
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from polygraft.errors import ExportError

NUM_EXAMPLES = 4


def sample_examples(task: Any, run_dir: str | Path | None = None) -> list[dict[str, Any]]:
    """At least two raw examples the task's preprocessor reads."""
    from polygraft.conformance.examples import default_examples, vector_size

    key = task.backbone.preprocessor.input_key
    found = default_examples(key, size=vector_size(task.backbone))
    if found is None and run_dir is not None:
        found = _run_examples(Path(run_dir))
    if not found or len(found) < 2:
        raise ExportError(f"no sample inputs for input key {key!r}: pass examples=[...] to export_model (raw "
                          "examples as the data source yields them), or export a run whose recipe data can be opened")
    return [dict(example) for example in found]


def _run_examples(run_dir: Path) -> list[dict[str, Any]] | None:
    """The first examples of the run's val (else train) data, read through its recipe."""
    import polygraft
    from polygraft.recipe import Recipe, load_split
    from polygraft.run import RunDirectory

    run = RunDirectory(run_dir, enabled=False)
    if not run.config_file.is_file():
        return None
    recipe = Recipe.from_dict(run.read_config(), where=str(run.config_file))
    catalog = polygraft.build_catalog()
    for split in ("val", "train"):
        data = load_split(recipe, split, catalog)
        if data is not None and len(data) >= 2:
            return [dict(data[index]) for index in range(min(NUM_EXAMPLES, len(data)))]
    return None


def collate(task: Any, examples: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The evaluation batch of ``examples`` (inputs, meta) as the trainer would make it."""
    pipeline = task.data_pipeline(training=False)
    return pipeline.collate([pipeline.prepare(dict(example)) for example in examples])

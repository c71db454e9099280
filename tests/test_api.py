"""The Python API: components by name, weights aliases, compatibility checks, model round trips."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

import polygraft
from polygraft import hookimpl
from polygraft.errors import ConfigError, IncompatibleComponentsError, UnknownComponentError, WeightsError
from polygraft.specs import TaskSpec, WeightsSpec

WEIGHTS_FILE: dict[str, str] = {}


def toy_weights_location() -> str:
    return WEIGHTS_FILE["path"]


class WeightsPlugin:
    @hookimpl
    def polygraft_register_weights(self, register):
        register(WeightsSpec(name="toy-demo", factory=f"{__name__}:toy_weights_location", backbone="toy",
                             backbone_options={"hidden": 8}))
        register(WeightsSpec(name="other-demo", factory=f"{__name__}:toy_weights_location", backbone="bert"))

    @hookimpl
    def polygraft_register_tasks(self, register):
        register(TaskSpec(name="needs-maps", factory="polygraft.tasks.classification:ClassificationTask",
                          consumes="maps"))


@pytest.fixture
def catalog(polygraft_catalog_factory, tmp_path: Path):
    source = polygraft.create_backbone("toy", in_features=8, hidden=8)
    WEIGHTS_FILE["path"] = str(tmp_path / "toy.safetensors")
    save_file(source.state_dict(), WEIGHTS_FILE["path"])
    WEIGHTS_FILE["reference"] = source
    return polygraft_catalog_factory(plugins=[("weights-plugin", WeightsPlugin())])


def test_weights_alias_resolves_to_a_local_file_with_its_options(catalog) -> None:
    backbone = polygraft.create_backbone("toy", weights="toy-demo", catalog=catalog)
    assert backbone.feature_dim == 8
    for a, b in zip(backbone.parameters(), WEIGHTS_FILE["reference"].parameters()):
        assert torch.equal(a, b)


def test_weights_for_another_backbone_are_refused(catalog) -> None:
    with pytest.raises(IncompatibleComponentsError, match="create_backbone\\('bert'"):
        polygraft.create_backbone("toy", weights="other-demo", catalog=catalog)


def test_unknown_weights_name_lists_aliases(catalog) -> None:
    with pytest.raises(WeightsError, match="Known aliases: other-demo, toy-demo"):
        polygraft.create_backbone("toy", weights="toy-dmeo", catalog=catalog)


def test_task_that_needs_maps_refuses_a_backbone_without_them(catalog) -> None:
    with pytest.raises(IncompatibleComponentsError, match="yields only"):
        polygraft.create_task("needs-maps", backbone="toy", num_classes=2, catalog=catalog)


def test_a_run_directory_is_accepted_as_backbone_weights(tmp_path: Path) -> None:
    task = polygraft.create_task("classification", backbone="toy", num_classes=2,
                                 backbone_options={"in_features": 3, "hidden": 12, "depth": 1})
    from polygraft.model_io import save_model

    save_model(task, tmp_path / "model")
    backbone = polygraft.create_backbone("toy", weights=tmp_path)
    assert backbone.feature_dim == 12  # architecture options come from the run, not defaults
    for a, b in zip(backbone.parameters(), task.backbone.parameters()):
        assert torch.equal(a, b)
    with pytest.raises(IncompatibleComponentsError, match="holds a 'toy' backbone"):
        polygraft.create_backbone("bert", weights=tmp_path)


def test_list_components_and_unknown_kind() -> None:
    names = [row["name"] for row in polygraft.list_components("tasks")]
    assert {"classification", "token-classification", "detection"} <= set(names)
    with pytest.raises(UnknownComponentError, match="unknown component kind"):
        polygraft.list_components("gadgets")


def test_import_polygraft_is_light() -> None:
    from polygraft.testing import heavy_modules_imported_by

    assert heavy_modules_imported_by("import polygraft; polygraft.list_components('backbones')") == []


def test_load_without_a_model_says_what_is_missing(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="is it a polygraft run"):
        polygraft.load(tmp_path)


def test_trainable_layers_is_a_strategy_option_and_the_backbone_says_so() -> None:
    with pytest.raises(ConfigError, match=r"strategy: \[\{name: full, trainable_layers: 1\}\]"):
        polygraft.create_backbone("toy", in_features=3, depth=2, trainable_layers=1)

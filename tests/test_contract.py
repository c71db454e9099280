"""The plugin contract's promises that a third-party author relies on (each from an author's report): the
documented objective runs, wrong feature shapes are caught on the first batch naming the backbone, plugins declare
the API they were written for, plugins add commands, saved models record versions, and ``predict`` reads any input.
"""

from __future__ import annotations

import json
import re
import sys
import textwrap
import types
from pathlib import Path

import pytest
import torch

import polygraft
from polygraft.cli import main
from polygraft.errors import IncompatibleComponentsError, WeightsError
from polygraft.features import Features
from polygraft.interfaces import Backbone, Callback, ListSource
from polygraft.plugins import build_catalog

ROOT = Path(__file__).resolve().parents[1]


def test_the_documented_objective_runs() -> None:
    """docs/contracts.md's complete objective is real code: it trains and validates."""
    text = (ROOT / "docs" / "contracts.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert blocks, "docs/contracts.md has no python example"
    exec(compile(blocks[0], "docs/contracts.md", "exec"), {"__name__": "contracts_example"})


class WrongShapes(Backbone):
    """A toy backbone that breaks its declared shapes one way or another."""

    modality = "any"

    def __init__(self, mistake: str) -> None:
        super().__init__()
        self.inner = polygraft.create_backbone("toy", in_features=3, hidden=8)
        self.feature_dim, self.mistake = 8, mistake

    @property
    def preprocessor(self):  # type: ignore[override]
        return self.inner.preprocessor

    def forward(self, inputs):  # type: ignore[override]
        h = self.inner(inputs).pooled
        if self.mistake == "wide":
            return Features(pooled=torch.cat([h, h], dim=1))
        return Features(pooled=h, sequence=h[:, :, None].expand(-1, -1, 5))  # (B, D, T): transposed

    def layer_groups(self):  # type: ignore[override]
        return self.inner.layer_groups()


@pytest.mark.parametrize(("mistake", "message"), [
    ("wide", r"backbone 'WrongShapes': pooled features must be \(batch, feature_dim=8\), got \(4, 16\)"),
    ("transposed", r"sequence features must be \(batch=4, T, feature_dim=8\), got \(4, 8, 5\)"),
])
def test_wrong_feature_shapes_stop_on_the_first_batch(mistake: str, message: str) -> None:
    from polygraft.tasks.classification import ClassificationTask

    data = ListSource([{"x": [float(i), 1.0, 0.0], "label": "ab"[i % 2]} for i in range(8)])
    task = ClassificationTask(WrongShapes(mistake), label_names=["a", "b"])
    trainer = polygraft.Trainer(polygraft.TrainerConfig(max_steps=2, batch_size=4, progress=False))
    with pytest.raises(IncompatibleComponentsError, match=message):
        trainer.fit(task, train_data=data)


def test_a_step_starts_and_ends_once_with_a_partial_last_chunk() -> None:
    class Count(Callback):
        def __init__(self) -> None:
            self.starts, self.ends, self.batches = [], [], 0

        def on_train_step_start(self, trainer, step):
            self.starts.append(step)

        def on_train_batch_end(self, trainer, batch, output):
            self.batches += 1

        def on_train_step_end(self, trainer, step, loss, batch, output):
            self.ends.append(step)

    data = polygraft.load_dataset("synthetic-classification", size=40, in_features=4)  # 5 batches of 8
    task = polygraft.create_task("classification", backbone="toy", label_names=data.label_names,
                                 backbone_options={"in_features": 4})
    count = Count()
    config = polygraft.TrainerConfig(max_epochs=2, batch_size=8, grad_accum=2, progress=False)
    result = polygraft.Trainer(config, callbacks=[count]).fit(task, train_data=data)
    assert count.starts == [0, 1, 2, 3, 4, 5] and count.ends == [1, 2, 3, 4, 5, 6]  # steps of 2, 2, 1 batches
    assert count.batches == 10 and result.metrics == {}


def plugin_module(name: str, body: str) -> types.ModuleType:
    module = types.ModuleType(name)
    exec(textwrap.dedent(body), module.__dict__)
    return module


def test_a_plugin_written_for_another_plugin_api_is_reported_not_loaded() -> None:
    future = plugin_module("future_plugin", """
        from polygraft import hookimpl
        POLYGRAFT_PLUGIN_API = 99
        @hookimpl
        def polygraft_register_backbones(register):
            pass
    """)
    catalog = build_catalog(autoload=False, disabled=(), plugins=[("future", future)])
    info = next(info for info in catalog.plugins if info.name == "future")
    assert info.status == "failed"
    assert "written for polygraft plugin API 99" in info.error and "upgrade polygraft" in info.error


def test_plugins_add_commands(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """A plugin's CommandSpec becomes ``polygraft NAME``; its entry point is imported only when it runs."""
    calls = []
    impl = plugin_module("greet_impl", "def main(argv):\n    CALLS.append(list(argv))\n    return 3\n")
    impl.CALLS = calls
    monkeypatch.setitem(sys.modules, "greet_impl", impl)
    plugin = plugin_module("greet_plugin", """
        from polygraft import hookimpl
        from polygraft.specs import CommandSpec
        @hookimpl
        def polygraft_register_commands(register):
            register(CommandSpec(name="greet", factory="greet_impl:main", description="say hello"))
    """)
    monkeypatch.setattr("polygraft.plugins.build_catalog",
                        lambda **kw: build_catalog(autoload=False, disabled=(), plugins=[("greet", plugin)]))
    assert main(["greet", "--loud", "-x", "world"]) == 3
    assert calls == [["--loud", "-x", "world"]]
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "greet" in capsys.readouterr().out and "say hello" in capsys.readouterr().out + "say hello"


def test_first_party_commands_answer_help() -> None:
    from polygraft.conformance.components import check_command
    from polygraft.conformance.report import Report

    report = Report("polygraft-text")
    catalog = build_catalog()
    for name in ("text-vocab", "vision-shapes"):
        check_command(catalog.get("command", name), report)
    assert report.passed, report


def test_saved_models_record_versions_and_name_them_when_loading_fails(tmp_path: Path) -> None:
    from polygraft.model_io import save_model

    task = polygraft.create_task("classification", backbone="toy", label_names=["a", "b"],
                                 backbone_options={"in_features": 2})
    directory = save_model(task, tmp_path / "model")
    config = json.loads((directory / "polygraft.json").read_text())
    assert config["versions"]["polygraft"] == polygraft.__version__ and "torch" in config["versions"]
    config["versions"]["polygraft"] = "0.0.1"
    config["backbone"]["options"]["hidden"] = 32  # the weights no longer fit the rebuilt architecture
    (directory / "polygraft.json").write_text(json.dumps(config))
    with pytest.raises(WeightsError, match=r"saved with polygraft 0.0.1 \(installed: "):
        polygraft.load(directory)


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("predict") / "run"
    recipe = polygraft.Recipe.from_dict({
        "task": "classification", "backbone": "toy", "backbone_options": {"in_features": 2},
        "data": {"common": {"dataset": "synthetic-classification", "size": 16, "in_features": 2}, "train": {}},
        "trainer": {"max_steps": 1, "batch_size": 8, "progress": False}, "output_dir": str(run)})
    assert recipe.data["train"]["in_features"] == 2  # data.common reached the split
    polygraft.run_recipe(recipe)
    return run


def test_predict_json_is_always_a_list(toy_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["predict", str(toy_run), "[0.5, 1.5]", "--json"]) == 0
    results = json.loads(capsys.readouterr().out)
    assert isinstance(results, list) and len(results) == 1 and results[0]["input"] == "[0.5, 1.5]"


def test_predict_reads_dash_inputs_stdin_and_files(toy_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO("[1.0, 2.0]\n\n[-1.0, 0.0]\n"))
    inputs = tmp_path / "inputs.txt"
    inputs.write_text("[3.0, 3.0]\n")
    assert main(["predict", str(toy_run), "-", "--file", str(inputs), "--json"]) == 0
    assert [r["input"] for r in json.loads(capsys.readouterr().out)] == ["[1.0, 2.0]", "[-1.0, 0.0]", "[3.0, 3.0]"]
    # an input that starts with '-' is an input (here not a JSON list: the preprocessor says so), not an option
    assert main(["predict", str(toy_run), "-1.5,2"]) == 2
    assert "expected a JSON list of 2 numbers, got '-1.5,2'" in capsys.readouterr().err
    assert main(["predict", str(toy_run), "--field", "x=[0.0, 1.0]", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["input"] == {"x": "[0.0, 1.0]"}


def test_callback_states_are_saved_under_their_state_keys() -> None:
    from polygraft.builtin.callbacks import EarlyStopping
    from polygraft.errors import TrainingError
    from polygraft.training.resume import callback_states

    states = callback_states([EarlyStopping(monitor="val/loss"), EarlyStopping(monitor="val/accuracy")])
    assert set(states) == {"EarlyStopping[val/loss,min]", "EarlyStopping[val/accuracy,max]"}

    class Plain(Callback):
        pass

    with pytest.raises(TrainingError, match=r"two callbacks save their state under '.*Plain'; give one of them"):
        callback_states([Plain(), Plain()])


def test_data_common_is_shared_and_each_split_wins() -> None:
    recipe = polygraft.Recipe.from_dict({
        "task": "classification", "backbone": "toy",
        "data": {"common": {"dataset": "synthetic-classification", "size": 16, "seed": 3},
                 "train": {}, "test": {"size": 8}, "val": None}})
    assert recipe.data == {"train": {"dataset": "synthetic-classification", "size": 16, "seed": 3},
                           "test": {"dataset": "synthetic-classification", "size": 8, "seed": 3}}

"""The conformance kit catches what plugin authors actually get wrong.

A small correct plugin (a new modality ``rows``, an MLP backbone with a fitted scaler, a dataset and an objective)
passes; each variant below breaks it in one way a first plugin author did (docs/reviews: the kit-probe table) and
must fail ``check_plugin`` with a message that names the problem and what to do.
"""

from __future__ import annotations

import itertools
import textwrap
from pathlib import Path

import pytest

from polygraft.conformance.report import CheckFailed
from polygraft.testing import check_backbone, check_plugin, check_plugin_module

PLUGIN = '''
from polygraft import hookimpl
from polygraft.specs import BackboneSpec, DatasetSpec, ModalitySpec, ObjectiveSpec, TaskSpec


@hookimpl
def polygraft_register_modalities(register):
    register(ModalitySpec(name="rows", input_key="x"))


@hookimpl
def polygraft_register_backbones(register):
    register(BackboneSpec(name="probe-mlp", factory="MODULE_impl:create", modality="rows", produces=("pooled",)))


@hookimpl
def polygraft_register_datasets(register):
    register(DatasetSpec(name="probe-rows", factory="MODULE_impl:RowsSource", modality="rows", target="class"))


@hookimpl
def polygraft_register_objectives(register):
    register(ObjectiveSpec(name="probe-denoise", factory="MODULE_impl:Denoise", modality="rows"))


@hookimpl
def polygraft_register_tasks(register):
    register(TaskSpec(name="probe-classify", factory="MODULE_impl:ProbeTask", modality="rows", consumes="pooled",
                      target="class"))
'''

IMPL = '''
import random

import torch
from torch import nn

from polygraft.features import Features
from polygraft.interfaces import Backbone, DataPipeline, InMemorySource, Preprocessor, PretrainingObjective, StepOutput
from polygraft.interfaces.datasource import SPLITS
from polygraft.tasks.classification import ClassificationTask


class Scaler(Preprocessor):
    input_key = "x"

    def __init__(self, in_features, mean=None, std=None):
        self.in_features, self.mean, self.std = in_features, mean, std

    def fit(self, examples):
        rows = torch.tensor([list(examples[i]["x"]) for i in range(len(examples))], dtype=torch.float64)
        self.mean, self.std = rows.mean(0).tolist(), rows.std(0, correction=0).clamp_min(1e-6).tolist()

    def __call__(self, example):
        x = torch.tensor(example["x"], dtype=torch.float32)
        if self.mean is not None:
            x = (x - torch.tensor(self.mean)) / torch.tensor(self.std)
        return {"x": x}

    def collate(self, items):
        return {"x": torch.stack([item["x"] for item in items])}  # COLLATE

    def describe(self):
        return {"type": "scaler", "mean": self.mean, "std": self.std}  # DESCRIBE


class MLP(Backbone):
    modality = "rows"

    def __init__(self, in_features, hidden, mean, std):
        super().__init__()
        self.feature_dim = hidden  # FEATURE_DIM
        self.stem = nn.Linear(in_features, hidden)
        self.block = nn.Sequential(nn.LayerNorm(hidden), nn.Linear(hidden, hidden), nn.Dropout(0.5))
        self.head = nn.Linear(hidden, hidden)
        self._pre = Scaler(in_features, mean, std)

    @property
    def preprocessor(self):
        return self._pre

    def forward(self, inputs):
        h = self.stem(inputs["x"])
        h = self.head(h + self.block(h))
        return Features(pooled=h)  # FORWARD

    def layer_groups(self):
        return [self.stem, self.block, self.head]  # GROUPS

    def export(self, directory):
        return {**self.build_options, "mean": self._pre.mean, "std": self._pre.std}  # EXPORT


def create(*, weights=None, in_features: int = 4, hidden: int = 8, mean: list[float] | None = None,
           std: list[float] | None = None):
    backbone = MLP(in_features, hidden, mean, std)
    backbone.build_options = {"in_features": in_features, "hidden": hidden}
    return backbone  # RETURN


class RowsSource(InMemorySource):
    def __init__(self, *, split: str = "train", size: int = 12, seed: int = 0):
        super().__init__()
        rng = random.Random(seed + SPLITS.index(split))  # SEED
        self.label_names = ["a", "b"]  # LABEL_NAMES
        self.examples = [{"x": [rng.gauss(3.0 if i % 2 else -3.0, 1.0) + 50.0 for _ in range(4)],  # EXAMPLE
                          "label": "ab"[i % 2]} for i in range(size)]


class DenoisePipeline(DataPipeline):
    def __init__(self, preprocessor):
        self.preprocessor = preprocessor

    def prepare(self, example):
        return {"inputs": self.preprocessor(example)}

    def collate(self, items):
        return self.collate_inputs([item["inputs"] for item in items])


class Denoise(PretrainingObjective):
    def __init__(self, backbone):
        super().__init__()
        self.backbone = backbone
        self.decoder = nn.Linear(backbone.feature_dim, 4)

    def data_pipeline(self, *, training):
        return DenoisePipeline(self.backbone.preprocessor)

    def forward(self, batch):
        x = batch["inputs"]["x"]
        noisy = {"x": x + 0.1 * torch.randn_like(x)}
        features = self.backbone(noisy).pool()  # OBJECTIVE_FEATURES
        return StepOutput(loss=((self.decoder(features) - x) ** 2).mean())  # LOSS


class ProbeTask(ClassificationTask):
    def predict(self, batch):
        return super().predict(batch)  # PREDICT
'''

# (id, replacements in plugin.py, replacements in the factory module, what the message must say)
VARIANTS = [
    # the mistakes the kit missed before
    ("wrong batch size", {}, {"Features(pooled=h)  # FORWARD": "Features(pooled=h.mean(0, keepdim=True))"},
     "rows for a batch of"),
    ("NaN features", {}, {"Features(pooled=h)  # FORWARD": "Features(pooled=h * float('nan'))"}, "NaN or infinite"),
    ("random output in eval mode", {}, {"Features(pooled=h)  # FORWARD": "Features(pooled=h + torch.randn_like(h))"},
     "eval mode differ"),
    ("layer groups miss parameters", {}, {"[self.stem, self.block, self.head]": "[self.stem, self.block]"},
     "misses 2 trainable parameters"),
    ("export options not JSON", {}, {'"mean": self._pre.mean,': '"mean": torch.tensor(self._pre.mean or [0.0]),'},
     "JSON cannot store: ['mean (Tensor)']"),
    ("export cannot rebuild the backbone", {}, {"return {**self.build_options, \"mean\"": "return {\"hiden\": 8, \"mean\""},
     "has no option 'hiden'; did you mean 'hidden'"),
    ("export loses the fitted state", {}, {', "mean": self._pre.mean, "std": self._pre.std}  # EXPORT': "}"},
     "rebuilt preprocessing differs"),
    ("export loses fitted state describe() hides", {},
     {', "mean": self._pre.mean, "std": self._pre.std}  # EXPORT': "}",
      '{"type": "scaler", "mean": self.mean, "std": self.std}': '{"type": "scaler"}'},
     "turns example 0 into different inputs"),
    ("factory module cannot be imported", {}, {"import random\n": "import random\nimport not_installed_lib_xyz\n"},
     "imports 'not_installed_lib_xyz', which is not installed"),
    ("factory function does not exist", {"MODULE_impl:create\"": "MODULE_impl:create_mlp\""}, {},
     "defines no 'create_mlp'"),
    ("misspelled hook name", {"def polygraft_register_backbones": "def polygraft_register_backbone"}, {},
     "did you mean 'polygraft_register_backbones'"),
    ("hook without @hookimpl", {"@hookimpl\ndef polygraft_register_datasets": "def polygraft_register_datasets"}, {},
     "not marked with @polygraft.hookimpl"),
    ("registers nothing", {"@hookimpl\n": "", "def polygraft_register_": "def register_"}, {}, "registered nothing"),
    ("marked hook without the polygraft_ prefix", {"def polygraft_register_datasets": "def register_datasets"}, {},
     "unknown hook 'register_datasets'; hooks are named polygraft_register_<kinds>: did you mean "
     "'polygraft_register_datasets'?"),
    ("undeclared modality", {'register(ModalitySpec(name="rows", input_key="x"))': "pass"}, {},
     "modality 'rows' is not declared"),
    ("backbone output detached", {}, {"Features(pooled=h)  # FORWARD": "Features(pooled=h.detach())"},
     "sends no gradient into the backbone"),
    ("objective detaches the backbone", {}, {"self.backbone(noisy).pool()": "self.backbone(noisy).pool().detach()"},
     "sends no gradient into the backbone"),
    ("objective loss is NaN", {}, {"((self.decoder(features) - x) ** 2).mean()": "(self.decoder(features) * float('nan')).mean()"},
     "training loss is nan"),
    ("task predicts too few examples", {}, {"return super().predict(batch)  # PREDICT": "return super().predict(batch)[:1]"},
     "predict(batch) must return one dict per example (4), got list of 1"),
    ("dataset examples lack the input key", {}, {'[{"x": [rng': '[{"features": [rng'}, "has no 'x' key"),
    ("dataset labels outside label_names", {}, {'self.label_names = ["a", "b"]': 'self.label_names = ["a"]'},
     "not in label_names"),
    ("dataset not deterministic", {}, {"random.Random(seed + SPLITS.index(split))": "random.Random()"},
     "opening the train split twice gives different examples"),
    ("dataset without split", {}, {"*, split: str = \"train\", size": "*, size",
                                   "seed + SPLITS.index(split)": "seed"}, "accept split="),
    # the mistakes the kit caught before (still caught, now with a message saying what to do)
    ("unpicklable preprocessor", {}, {"self.in_features, self.mean, self.std = in_features, mean, std":
                                      "self.in_features, self.mean, self.std = in_features, mean, std\n"
                                      "        self.fn = lambda v: v"}, "must pickle"),
    ("wrong feature_dim", {}, {"self.feature_dim = hidden  # FEATURE_DIM": "self.feature_dim = hidden + 1"},
     "must be (batch, feature_dim=9)"),
    ("forward returns a tensor", {}, {"return Features(pooled=h)  # FORWARD": "return h"},
     "must return polygraft.features.Features"),
    ("factory without weights", {}, {"def create(*, weights=None, ": "def create(*, "}, "must accept the keyword weights"),
    ("factory returns a bare module", {}, {"return backbone  # RETURN": "return nn.Linear(4, 8)"},
     "return a polygraft.interfaces.Backbone subclass"),
    ("spec promises sequence", {'produces=("pooled",)': 'produces=("pooled", "sequence")'}, {},
     "promises 'sequence' features"),
    ("collate returns lists", {}, {'{"x": torch.stack([item["x"] for item in items])}': '{"x": [item["x"] for item in items]}'},
     "collate returned lists for ['x']"),
    ("one layer group", {}, {"[self.stem, self.block, self.head]": "[nn.ModuleList([self.stem, self.block, self.head])]"},
     "at least 2 ordered groups"),
    ("wrong spec kind", {'register(DatasetSpec(name="probe-rows", factory="MODULE_impl:RowsSource", modality="rows", '
                         'target="class"))': 'register(BackboneSpec(name="probe-rows", factory="MODULE_impl:create"))'},
     {}, "as a dataset; use DatasetSpec"),
    ("malformed factory string", {"MODULE_impl:create\"": "MODULE_impl.create\""}, {},
     "factory must be a 'module:function' string"),
]

_ids = itertools.count()


def write_plugin(folder: Path, plugin_changes: dict[str, str], impl_changes: dict[str, str],
                 monkeypatch: pytest.MonkeyPatch, *, header: str = "") -> str:
    """Write a probe plugin module (and its factory module) under a fresh name; returns the plugin module name."""
    module = f"kitprobe_{next(_ids)}"
    plugin, impl = header + PLUGIN, IMPL
    for old, new in plugin_changes.items():
        assert old in plugin, old
        plugin = plugin.replace(old, new)
    for old, new in impl_changes.items():
        assert old in impl, old
        impl = impl.replace(old, new)
    (folder / f"{module}.py").write_text(textwrap.dedent(plugin).replace("MODULE", module))
    (folder / f"{module}_impl.py").write_text(textwrap.dedent(impl))
    monkeypatch.syspath_prepend(str(folder))
    return module


def test_the_correct_plugin_passes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    module = write_plugin(tmp_path, {}, {}, monkeypatch)
    report = check_plugin(module, check_imports=False, check_installed_names=False)
    assert report.passed and not report.warnings, report
    checked = {result.component for result in report.results}
    assert {"backbone 'probe-mlp'", "dataset 'probe-rows'", "modality 'rows'"} <= checked
    assert any(c.startswith("objective 'probe-denoise'") for c in checked)
    assert any(c.endswith("in task 'classification'") for c in checked)
    assert "task 'probe-classify' on backbone 'probe-mlp'" in checked


@pytest.mark.parametrize(("plugin_changes", "impl_changes", "expected"),
                         [variant[1:] for variant in VARIANTS], ids=[variant[0] for variant in VARIANTS])
def test_each_mistake_is_caught_with_a_clear_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     plugin_changes: dict[str, str], impl_changes: dict[str, str],
                                                     expected: str) -> None:
    module = write_plugin(tmp_path, plugin_changes, impl_changes, monkeypatch)
    with pytest.raises(CheckFailed) as caught:
        check_plugin(module, check_imports=False, check_installed_names=False)
    assert expected in str(caught.value), str(caught.value)


def test_heavy_import_in_the_plugin_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    module = write_plugin(tmp_path, {}, {}, monkeypatch, header="import torch  # noqa: F401\n")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    with pytest.raises(CheckFailed, match=r"imports \['torch'\] at module level; import them inside factories"):
        check_plugin(module, check_installed_names=False)
    with pytest.raises(CheckFailed, match=r"imports \['torch'\] at module level"):
        check_plugin_module(module)


def test_check_plugin_module_catches_hook_typos_and_missing_factories(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    typo = write_plugin(tmp_path, {"def polygraft_register_backbones": "def polygraft_register_backbone"}, {},
                        monkeypatch)
    with pytest.raises(CheckFailed, match="did you mean 'polygraft_register_backbones'"):
        check_plugin_module(typo)
    missing = write_plugin(tmp_path, {}, {"import random\n": "import random\nimport not_installed_lib_xyz\n"},
                           monkeypatch)
    with pytest.raises(CheckFailed, match="not_installed_lib_xyz"):
        check_plugin_module(missing)


def test_a_name_shared_with_an_installed_plugin_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    module = write_plugin(tmp_path, {'name="probe-mlp"': 'name="timm"'}, {}, monkeypatch)
    report = check_plugin(module, check_imports=False, options_only=True, options={"timm": {}})
    assert report.passed, report
    assert any("also claimed by polygraft-vision" in w.message and f"{module}:timm" in w.message
               for w in report.warnings), report


def test_what_cannot_run_fails_until_given_or_skipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    module = write_plugin(tmp_path, {'input_key="x"': 'input_key="row"'}, {}, monkeypatch)
    report = check_plugin(module, check_imports=False, check_installed_names=False, raise_on_failure=False)
    assert not report.passed
    assert any("no default examples for input key 'row'" in r.message for r in report.not_run_results), report
    skipped = check_plugin(module, check_imports=False, check_installed_names=False,
                           skip={"probe-mlp": "needs row examples", "probe-denoise": "pairs with probe-mlp"},
                           raise_on_failure=False)
    assert not any(r.component.startswith("backbone") and r.status == "not run" for r in skipped.results)
    assert any(r.status == "skipped" and "needs row examples" in r.message for r in skipped.results)


def test_bare_keys_naming_two_kinds_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    module = write_plugin(tmp_path, {'name="probe-denoise"': 'name="probe-mlp"'}, {}, monkeypatch)
    with pytest.raises(CheckFailed, match="'probe-mlp' names a backbone and a objective; write 'backbone:probe-mlp'"):
        check_plugin(module, check_imports=False, check_installed_names=False, options={"probe-mlp": {"hidden": 8}})


def test_check_backbone_keeps_its_signature_and_reports_every_problem(polygraft_catalog_factory) -> None:
    catalog = polygraft_catalog_factory()
    backbone = check_backbone(catalog, "toy", options={"in_features": 3},
                              examples=[{"x": [[0.0, 1.0, 2.0]] * 2}, {"x": [[1.0, 0.0, 2.0]] * 3}])
    assert backbone.feature_dim == 16
    with pytest.raises(CheckFailed, match="promises 'sequence' features"):
        check_backbone(catalog, "toy", options={"in_features": 3}, examples=[{"x": [0.0, 1.0, 2.0]}] * 2)


def test_core_builtins_conform() -> None:
    """Core's own plugin through the kit: toy, fusion and columns backbones, synthetic data, tasks, strategies and
    callbacks (the multimodal data sets have their own tests: tests/test_fusion_data.py)."""
    sequences = [{"x": [[float(i + j) for j in range(3)]] * (8 + i), "transcript": text}
                 for i, text in enumerate(["ab", "ba", "a b", "bb"])]
    vectors = [{"x": [0.0, 1.0, 2.0], "label": "a"}, {"x": [2.0, 1.0, 0.0], "label": "b"}]
    report = check_plugin("polygraft", check_imports=False, options={
        "toy": {"in_features": 3}, "synthetic-classification": {"in_features": 3, "size": 8},
        "fusion": {"hidden": 8, "branches": {"x": {"backbone": "toy", "backbone_options": {"in_features": 3}}}},
        "columns": {"numbers": ["age"], "categories": ["city"], "hidden": 8}},
        examples={"toy": [{"x": s["x"]} for s in sequences], "task:ctc": sequences, "fusion": vectors,
                  "columns": [{"age": 30.0, "city": "Oslo"}, {"age": None, "city": "Rome"}],
                  "task:classification": vectors,
                  "task:regression": [{"x": [0.0, 1.0, 2.0], "label": 1.5}, {"x": [2.0, 1.0, 0.0], "label": "-2"}],
                  "task:multilabel-classification": [{"x": [0.0, 1.0, 2.0], "label": "a|b"},
                                                     {"x": [2.0, 1.0, 0.0], "label": ["b"]}],
                  "task:metric-learning": [{"x": [0.0, 1.0, 2.0], "label": "ann"}, {"x": [0.1, 1.0, 2.0], "label": "ann"},
                                           {"x": [2.0, 1.0, 0.0], "label": "bo"}, {"x": [2.0, 1.1, 0.0], "label": "bo"}]},
        pairs=dict.fromkeys(["task:ctc", "task:classification", "task:regression", "task:multilabel-classification",
                             "task:metric-learning"], "toy"),
        skip={"task:token-classification": "needs a backbone that maps tokens to words (polygraft-text's bert)",
              "task:question-answering": "needs a backbone that encodes question+context pairs (polygraft-text)",
              "task:detection": "needs a maps backbone (polygraft-vision) and label_names from the data",
              "task:segmentation": "needs a maps backbone (polygraft-vision); tests/test_segmentation.py trains it",
              "strategy:per-branch": "needs a fusion backbone (tests/test_fusion_strategies.py)",
              "strategy:distill": "needs a trained teacher run (tests/test_distill.py trains one)",
              **dict.fromkeys(["dataset:av-digits", "dataset:review-numbers", "dataset:shape-captions",
                               "dataset:multimodal-manifest"], "fields for fusion branches of other plugins' "
                                                               "backbones (tests/test_fusion_data.py)")})
    checked = {result.component for result in report.results if result.status == "ok"}
    assert {"task 'ctc' on backbone 'toy'", "task 'classification' on backbone 'toy'", "strategy 'lora'",
            "task 'metric-learning' on backbone 'toy'",
            "callback 'early-stopping'", "dataset 'synthetic-classification'", "backbone 'fusion'",
            "backbone 'columns'", "task 'regression' on backbone 'toy'",
            "task 'multilabel-classification' on backbone 'toy'"} <= checked


def test_with_plugins_sharing_a_name_checks_the_plugins_own_claim(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A dependency (with_plugins) that registers a name the checked plugin registers too: the bare name is
    ambiguous between two third-party plugins, so the kit checks the plugin's own claim by its qualified name
    instead of crashing with DuplicateComponentError."""
    import importlib

    mine = write_plugin(tmp_path, {}, {}, monkeypatch)
    other = write_plugin(tmp_path, {}, {}, monkeypatch)
    report = check_plugin(mine, check_imports=False, check_installed_names=False,
                          with_plugins=[("other", importlib.import_module(other))], raise_on_failure=False)
    checked = {result.component for result in report.results if result.status == "ok"}
    assert f"dataset '{mine}:probe-rows'" in checked and f"backbone '{mine}:probe-mlp'" in checked, report
    assert not any("DuplicateComponentError" in result.message for result in report.results), report

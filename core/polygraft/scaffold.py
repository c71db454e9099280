"""``polygraft new-plugin NAME``: write a complete plugin distribution to start from.

The plugin has a ``pyproject.toml`` with the ``polygraft`` entry point, a ``plugin.py`` that registers specs (and
a :class:`~polygraft.specs.ModalitySpec` when the modality is new), a backbone with a preprocessor whose fitted
statistics survive ``export`` → ``polygraft.load``, a CSV dataset with train/val/test/all splits, a recipe, example
data, a README, and tests that run polygraft's conformance kit. The input handling follows the modality: numbers
for a new modality or ``any``, texts, images or audio clips for ``text``, ``vision`` and ``speech``.

Example:
    >>> import tempfile
    >>> from polygraft.scaffold import new_plugin
    >>> root = new_plugin("tabular", modality="tabular", directory=tempfile.mkdtemp())
    >>> root.name, (root / "polygraft_tabular" / "plugin.py").is_file()
    ('polygraft-tabular', True)
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path
from string import Template
from typing import Any

from polygraft.errors import ConfigError
from polygraft.scaffold_data import write_example_data
from polygraft.version import PLUGIN_API

NAME = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")
BUILTIN_INPUT_KEYS = {"text": "text", "vision": "image", "speech": "audio", "any": "x"}

KINDS: dict[str, dict[str, str]] = {
    "vector": {
        "in_features": "4", "extra_dependencies": "", "input_description": "rows of numbers",
        "csv_description": "numeric feature columns",
        "read_description": 'a JSON list ("[10.2, 9.8, 11.0, 10.4]") or a CSV row ("10.2,9.8,11.0,10.4")',
        "predict_example": '"10.2,9.8,11.0,10.4"', "read_input_value": '"10.2,9.8,11.0,10.4"',
        "doc_setup": 'examples = [{"$key": [1.0, 2.0, 3.0, 4.0]}, {"$key": [2.0, 4.0, 6.0, 8.0]}]',
        "doctest_setup": 'csv = pathlib.Path(tempfile.mkdtemp()) / "d.csv"\n    >>> _ = csv.write_text('
                         '"f1,f2,label\\n1.0,2.0,a\\n3.0,4.0,b\\n")',
    },
    "text": {
        "in_features": "64", "extra_dependencies": "", "input_description": "texts (hashed character trigrams)",
        "csv_description": "a text column",
        "read_description": "the text itself", "predict_example": '"a lovely film"',
        "read_input_value": '"a lovely film"',
        "doc_setup": 'examples = [{"$key": "a lovely film"}, {"$key": "a dull day"}]',
        "doctest_setup": 'csv = pathlib.Path(tempfile.mkdtemp()) / "d.csv"\n    >>> _ = csv.write_text('
                         '"text,label\\na lovely film,a\\na dull day,b\\n")',
    },
    "vision": {
        "in_features": "64", "extra_dependencies": ', "Pillow>=10"',
        "input_description": "images (8x8 grayscale thumbnails)", "csv_description": "a path column (images)",
        "read_description": "an image file path", "predict_example": "data/images/000.png",
        "read_input_value": 'str(DATA.parent / "images" / "000.png")',
        "doc_setup": 'from PIL import Image\n    >>> examples = [{"$key": Image.new("L", (16, 16), v)} for v in (40, 200)]',
        "doctest_setup": 'from PIL import Image\n    >>> folder = pathlib.Path(tempfile.mkdtemp())\n'
                         '    >>> for n in "ab":\n    ...     Image.new("L", (8, 8)).save(folder / f"{n}.png")\n'
                         '    >>> csv = folder / "d.csv"\n'
                         '    >>> _ = csv.write_text("path,label\\na.png,a\\nb.png,b\\n")',
    },
    "speech": {
        "in_features": "32", "extra_dependencies": ', "soundfile>=0.12", "numpy>=1.24"',
        "input_description": "audio clips (log energy of equal slices)", "csv_description": "a path column (clips)",
        "read_description": "an audio file path", "predict_example": "data/clips/000.wav",
        "read_input_value": 'str(DATA.parent / "clips" / "000.wav")',
        "doc_setup": 'import numpy as np\n    >>> examples = [{"$key": np.full(800, v, dtype="float32"), '
                     '"sample_rate": 16000} for v in (0.1, 0.5)]',
        "doctest_setup": 'import numpy as np, soundfile\n    >>> folder = pathlib.Path(tempfile.mkdtemp())\n'
                         '    >>> for n in "ab":\n    ...     soundfile.write(folder / f"{n}.wav", '
                         'np.zeros(800, dtype="float32"), 16000)\n'
                         '    >>> csv = folder / "d.csv"\n'
                         '    >>> _ = csv.write_text("path,label\\na.wav,a\\nb.wav,b\\n")',
    },
}


def polygraft_requirement() -> str:
    """``polygraft>=0.1,<0.2``: the installed minor series (before 1.0 a minor release may break plugins)."""
    from polygraft import __version__

    major, minor = (int(part) for part in __version__.split(".")[:2])
    upper = f"{major}.{minor + 1}" if major == 0 else f"{major + 1}"
    return f"polygraft>={major}.{minor},<{upper}"


def _known_modality(modality: str) -> str | None:
    """The input key of a modality core or an installed plugin declares, else ``None`` (a new modality)."""
    if modality in BUILTIN_INPUT_KEYS:
        return BUILTIN_INPUT_KEYS[modality]
    from polygraft.plugins import build_catalog

    registry = build_catalog().registry("modality")
    if modality in registry:
        try:
            return getattr(registry.get(modality), "input_key", "") or "x"
        except Exception:  # claimed by several plugins: any of them; the key is usually the same
            return registry.all_entries()[0].spec.input_key or "x"  # type: ignore[attr-defined]
    return None


def _sections(text: str) -> dict[str, str]:
    parts = re.split(r"^# === (\w+)\n", text, flags=re.M)
    return {parts[i]: parts[i + 1].strip() + "\n\n" for i in range(1, len(parts), 2)}


def plugin_values(name: str, *, modality: str, input_key: str | None) -> dict[str, Any]:
    """Every ``${...}`` value the templates use."""
    short = name[len("polygraft-"):] if name.startswith("polygraft-") else name
    if not NAME.match(short):
        raise ConfigError(f"plugin name {name!r}: use lowercase letters, digits and single hyphens (e.g. tabular, "
                          "acme-models)")
    if not re.match(r"^[a-z][a-z0-9_.-]*$", modality):
        raise ConfigError(f"modality {modality!r}: use a lowercase name such as tabular")
    known_key = _known_modality(modality)
    new = known_key is None
    key = input_key or known_key or "x"
    if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", key):
        raise ConfigError(f"input key {key!r}: use a simple name such as x or rows")
    kind = modality if modality in ("text", "vision", "speech") else "vector"
    values: dict[str, Any] = dict(KINDS[kind])
    dist = f"polygraft-{short}"
    package = dist.replace("-", "_")
    requirement = polygraft_requirement()
    values.update(
        kind=kind, short=short, dist=dist, package=package, modality=modality, input_key=key,
        backbone=f"{short}-mlp", dataset=f"{short}-csv", polygraft_requirement=requirement,
        polygraft_range=requirement[len("polygraft"):],
        description=f"a {modality} backbone, preprocessing and dataset",
        plugin_api=str(PLUGIN_API),
        modality_import=", ModalitySpec" if new else "",
        modality_row=f"| modality | `{modality}` | raw examples carry it under `{key}` |\n" if new else "",
        modality_hook=(f'\n\n@hookimpl\ndef polygraft_register_modalities(register):\n'
                       f'    # a new kind of input: components name it as their modality; raw examples carry it '
                       f'under "{key}"\n'
                       f'    register(ModalitySpec(name="{modality}", input_key="{key}", '
                       f'description="{modality} inputs ({key!r} in raw examples)."))\n') if new else "",
    )
    values["doc_setup"] = values["doc_setup"].replace("$key", key)
    return values


def _render(text: str, values: dict[str, Any], where: str) -> str:
    try:
        return Template(text).substitute(values)
    except (KeyError, ValueError) as exc:  # pragma: no cover - a template bug
        raise ConfigError(f"template {where}: {exc}") from exc


def new_plugin(name: str, *, modality: str = "any", directory: str | Path = ".", input_key: str | None = None,
               force: bool = False) -> Path:
    """Write the plugin ``polygraft-<name>`` into ``directory``; returns its folder."""
    values = plugin_values(name, modality=modality, input_key=input_key)
    root = Path(directory) / values["dist"]
    if root.exists() and any(root.iterdir()) and not force:
        raise ConfigError(f"{root} already exists and is not empty; choose another --dir or name (or --force)")
    templates = resources.files("polygraft") / "templates"
    inputs = _sections((templates / "inputs" / f"{values['kind']}.py.tmpl").read_text(encoding="utf-8"))
    values["to_vector"] = _render(inputs["to_vector"], values, f"inputs/{values['kind']}")
    values["read_cells"] = _render(inputs["read_cells"], values, f"inputs/{values['kind']}")
    for folder, target in (("", root), ("package", root / values["package"]), ("tests", root / "tests"),
                           ("recipes", root / "recipes")):
        source = templates / "plugin" / folder if folder else templates / "plugin"
        for item in sorted(source.iterdir(), key=lambda p: p.name):
            if not item.name.endswith(".tmpl"):
                continue
            out = target / item.name[: -len(".tmpl")]
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(_render(item.read_text(encoding="utf-8"), values, item.name), encoding="utf-8")
    write_example_data(values["kind"], root / "data")
    return root

"""Checks run in a fresh interpreter: the plugin module imports no heavy library and its factories can be found.

Example:
    >>> from polygraft.conformance.probe import heavy_modules_imported_by
    >>> heavy_modules_imported_by("import json")
    []
"""

from __future__ import annotations

import json
import subprocess
import sys

from polygraft.conformance.report import CheckFailed

HEAVY_MODULES = ("torch", "transformers", "timm", "torchvision", "torchaudio")


def heavy_modules_imported_by(code: str) -> list[str]:
    """Run ``code`` in a fresh interpreter and return which heavy libraries it imported."""
    probe = (
        f"{code}\nimport sys, json\n"
        f"print(json.dumps(sorted(m for m in {HEAVY_MODULES!r} if m in sys.modules)))"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    if result.returncode != 0:
        raise CheckFailed(f"probe failed:\n{result.stderr}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def _catalog_code(module_name: str) -> str:
    return (
        "import importlib, json\nfrom polygraft.plugins import build_catalog\n"
        "from polygraft.importcheck import factory_problems\n"
        f"m = importlib.import_module({module_name!r})\n"
        "builtin = m.__name__ == 'polygraft.builtin.plugin'\n"
        "c = build_catalog(autoload=False, disabled=(), plugins=[] if builtin else [('probe', m)])\n"
        "info = c.plugins[-1]\n"
        "owners = {'polygraft' if builtin else 'probe'}\n"
        "problems = [str(p) for p in factory_problems(c, owners=owners)]\n"
        "print('POLYGRAFT-PROBE ' + json.dumps({'status': info.status, 'error': info.error, "
        "'counts': info.counts, 'problems': problems}))\n"
    )


def heavy_imports_of_plugin(module_name: str) -> list[str]:
    """Heavy libraries imported by importing ``module_name`` and collecting its specs."""
    return heavy_modules_imported_by(_catalog_code(module_name))


def check_plugin_module(module_name: str) -> None:
    """Importing the plugin module and collecting its specs imports no heavy library; its hook names are polygraft
    hooks; it registers something; every factory module it names can be found (without importing it)."""
    code = _catalog_code(module_name)
    probe = f"{code}\nimport sys\nprint(json.dumps(sorted(m for m in {HEAVY_MODULES!r} if m in sys.modules)))"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    if result.returncode != 0:
        raise CheckFailed(f"importing {module_name} failed:\n{result.stderr.strip()[-2000:]}")
    lines = result.stdout.strip().splitlines()
    state = json.loads(next(line for line in lines if line.startswith("POLYGRAFT-PROBE "))[16:])
    heavy = json.loads(lines[-1])
    if state["status"] != "ok":
        raise CheckFailed(f"{module_name} failed to load: {state['error']}")
    if not state["counts"]:
        raise CheckFailed(f"{module_name} registered nothing: check that each hook is named "
                          "polygraft_register_<kind>s, is marked @hookimpl and calls register(spec)")
    if state["problems"]:
        raise CheckFailed(f"{module_name}: " + "; ".join(state["problems"]))
    if heavy:
        raise CheckFailed(f"{module_name} imports {heavy} at module level; import them inside factories")

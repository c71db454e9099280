"""Install a plugin project into a folder the way ``pip install --no-deps --target`` would, without building a
wheel: its packages are copied and a ``.dist-info`` with its metadata and entry points is written, so
``importlib.metadata`` (and so polygraft's plugin discovery) finds it on ``PYTHONPATH``. Tests use it to try a
plugin in a subprocess without touching the shared environment or the network.

Example:
    >>> import tempfile
    >>> from pathlib import Path
    >>> from polygraft.conformance.install import install_for_tests
    >>> project = Path(tempfile.mkdtemp())
    >>> _ = (project / "pyproject.toml").write_text('[project]\\nname = "demo-plugin"\\nversion = "0.2"\\n'
    ...     '[project.entry-points.polygraft]\\ndemo = "demo_plugin.plugin"\\n')
    >>> (project / "demo_plugin").mkdir(); _ = (project / "demo_plugin" / "__init__.py").write_text("")
    >>> target = install_for_tests(project, Path(tempfile.mkdtemp()))
    >>> sorted(p.name for p in target.iterdir())
    ['demo_plugin', 'demo_plugin-0.2.dist-info']
"""

from __future__ import annotations

import fnmatch
import re
import shutil
from pathlib import Path
from typing import Any

from polygraft.errors import AssetError, ConfigError


def _read_pyproject(project: Path) -> dict[str, Any]:
    try:
        import tomllib
    except ImportError:  # Python 3.10
        try:
            import tomli as tomllib  # type: ignore[no-redef]
        except ImportError as exc:
            raise AssetError("reading pyproject.toml on Python 3.10 needs tomli: pip install tomli") from exc

    file = project / "pyproject.toml"
    if not file.is_file():
        raise ConfigError(f"{project} has no pyproject.toml")
    return tomllib.loads(file.read_text(encoding="utf-8"))


def _packages(project: Path, config: dict[str, Any]) -> tuple[Path, list[str]]:
    find = config.get("tool", {}).get("setuptools", {}).get("packages", {})
    explicit = find if isinstance(find, list) else None
    find = find.get("find", {}) if isinstance(find, dict) else {}
    root = project / (find.get("where", ["."])[0] if find.get("where") else ".")
    tops = explicit or sorted(p.name for p in root.iterdir() if (p / "__init__.py").is_file())
    include = find.get("include") or ["*"]
    exclude = find.get("exclude") or []
    chosen = [name for name in tops if "." not in name and any(fnmatch.fnmatch(name, pat) for pat in include)
              and not any(fnmatch.fnmatch(name, pat) for pat in exclude) and name not in ("tests", "test")]
    return root, chosen


def install_for_tests(project: str | Path, target: str | Path) -> Path:
    """Copy ``project``'s packages into ``target`` and write its ``.dist-info`` (name, version, Requires-Dist,
    entry points); returns ``target``. Put ``target`` on a subprocess's ``PYTHONPATH`` to use the plugin."""
    project, target = Path(project), Path(target)
    config = _read_pyproject(project)
    meta = config.get("project", {})
    name, version = meta.get("name"), str(meta.get("version", "0"))
    if not name:
        raise ConfigError(f"{project}/pyproject.toml has no [project] name")
    root, packages = _packages(project, config)
    if not packages:
        raise ConfigError(f"{project}: no package (a folder with __init__.py) to install")
    target.mkdir(parents=True, exist_ok=True)
    for package in packages:
        shutil.copytree(root / package, target / package, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    info = target / f"{re.sub(r'[-_.]+', '_', name)}-{version}.dist-info"
    info.mkdir(exist_ok=True)
    lines = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
    lines += [f"Requires-Dist: {requirement}" for requirement in meta.get("dependencies", [])]
    (info / "METADATA").write_text("\n".join(lines) + "\n", encoding="utf-8")
    groups = meta.get("entry-points", {})
    text = "".join(f"[{group}]\n" + "".join(f"{key} = {value}\n" for key, value in points.items()) + "\n"
                   for group, points in groups.items())
    (info / "entry_points.txt").write_text(text, encoding="utf-8")
    (info / "top_level.txt").write_text("\n".join(packages) + "\n", encoding="utf-8")
    (info / "INSTALLER").write_text("polygraft-testing\n", encoding="utf-8")
    return target

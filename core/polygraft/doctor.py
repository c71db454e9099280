"""``polygraft doctor``: what is installed, what this machine can do, and what is misconfigured.

It reports versions (polygraft, its plugins, key libraries), devices and precision support, whether each named
weights alias resolves to a local file (offline), each plugin's declared compatible polygraft range, and
findings: failed plugins, components whose factory cannot be imported, contested or ambiguous names, undeclared
modalities, missing system tools. Errors (things that break a recipe) make the command exit with 1.

Example:
    >>> from polygraft.doctor import diagnose
    >>> from polygraft.plugins import build_catalog
    >>> report = diagnose(build_catalog(autoload=False), devices=False, weights=False)
    >>> report["polygraft"], [f for f in report["findings"] if f["level"] == "error"]
    ('0.1.0', [])
"""

from __future__ import annotations

import platform
import shutil
import sys
from importlib import metadata
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from polygraft.plugins import Catalog

LIBRARIES = ("torch", "torchvision", "torchaudio", "transformers", "tokenizers", "timm", "peft", "torchmetrics",
             "safetensors", "pluggy", "pydantic", "numpy", "Pillow", "soundfile", "scikit-learn", "pycocotools",
             "seqeval", "ctranslate2")
SYSTEM_TOOLS = {"polygraft-speech": [("espeak-ng", "the spoken-digits datasets synthesise speech with it; "
                                                   "install it with `apt-get install espeak-ng`")]}


def _version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def polygraft_requirement(distribution: str) -> str | None:
    """The ``polygraft`` requirement a distribution declares (``polygraft>=0.1,<0.2``), or ``None``."""
    try:
        requires = metadata.requires(distribution) or []
    except metadata.PackageNotFoundError:
        return None
    for line in requires:
        name = line.split(";")[0].strip()
        bare = name.split("[")[0]
        for stop in "<>=!~ (":
            bare = bare.split(stop)[0]
        if bare.strip().lower() == "polygraft":
            return name
    return None


def check_range(requirement: str | None, version: str) -> tuple[str, str]:
    """``(level, message)`` for a plugin's declared polygraft requirement against the installed version."""
    if requirement is None:
        return "warning", "does not depend on polygraft in its metadata; declare e.g. polygraft>=0.1,<0.2"
    try:
        from packaging.requirements import Requirement
        from packaging.version import Version
    except ImportError:  # pragma: no cover - packaging ships with pip and setuptools
        return "ok", f"declares {requirement} (not checked: the packaging library is missing)"
    specifier = Requirement(requirement).specifier
    if not str(specifier):
        return "warning", (f"declares {requirement!r} with no version range; declare the polygraft versions it was "
                           "tested with, e.g. polygraft>=0.1,<0.2")
    if not specifier.contains(Version(version), prereleases=True):
        return "error", f"declares {requirement}, which excludes the installed polygraft {version}"
    upper = any(spec.operator in ("<", "<=", "~=", "==") for spec in specifier)
    if not upper:
        return "warning", f"declares {requirement} with no upper bound; a future polygraft may break it"
    return "ok", f"declares {requirement}"


def device_report() -> dict[str, Any]:
    """CUDA / MPS / CPU availability and bf16 / fp16 support."""
    import torch

    info: dict[str, Any] = {"cpu": {"threads": torch.get_num_threads(), "bf16_autocast": True}}
    cuda = torch.cuda.is_available()
    info["cuda"] = {"available": cuda, "version": torch.version.cuda}
    if cuda:
        info["cuda"].update(count=torch.cuda.device_count(),
                            names=[torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())],
                            bf16=torch.cuda.is_bf16_supported(), fp16=True)
    mps = getattr(torch.backends, "mps", None)
    info["mps"] = {"available": bool(mps and mps.is_available())}
    return info


def _weights(catalog: Catalog) -> list[dict[str, Any]]:
    from pathlib import Path

    rows = []
    for entry in catalog.registry("weights").all_entries():
        row: dict[str, Any] = {"name": entry.spec.name, "plugin": entry.owner,
                               "backbone": getattr(entry.spec, "backbone", "")}
        try:
            path = entry.spec.load_factory()()
            row.update(resolved=Path(path).exists(), path=str(path))
            if not row["resolved"]:
                row["error"] = f"its factory returned {path}, which does not exist"
        except Exception as exc:  # an asset package not installed: reported, not raised
            row.update(resolved=False, error=f"{type(exc).__name__}: {exc}")
        rows.append(row)
    return rows


def diagnose(catalog: Catalog | None = None, *, devices: bool = True, weights: bool = True) -> dict[str, Any]:
    """Everything ``polygraft doctor`` shows, as a JSON-friendly dict with ``findings``."""
    from polygraft import __version__
    from polygraft.importcheck import factory_problems
    from polygraft.plugins import CORE_DISTRIBUTION, FIRST_PARTY, build_catalog

    catalog = catalog or build_catalog()
    findings: list[dict[str, str]] = []

    def find(level: str, topic: str, message: str) -> None:
        findings.append({"level": level, "topic": topic, "message": message})

    plugins = []
    for info in catalog.plugins:
        row = info.to_dict()
        if info.distribution != CORE_DISTRIBUTION and info.version not in ("local", "unknown"):
            requirement = polygraft_requirement(info.distribution)
            level, message = check_range(requirement, __version__)
            row.update(requires_polygraft=requirement, compatibility=message)
            if level != "ok":
                find(level, f"plugin {info.distribution}", message)
        if info.status == "failed":
            find("error", f"plugin {info.distribution}", f"entry point {info.name!r} failed to load: {info.error}")
        for note in info.notes:
            level = "error" if "alone is ambiguous" in note else "warning"
            find(level, f"plugin {info.distribution}", note)
        for tool, why in SYSTEM_TOOLS.get(info.distribution, []):
            if info.status == "ok" and shutil.which(tool) is None:
                find("warning", f"plugin {info.distribution}", f"{tool} is not installed: {why}")
        plugins.append(row)
    for problem in factory_problems(catalog):
        find("error", f"{problem.kind} {problem.name}", str(problem))
    report: dict[str, Any] = {
        "polygraft": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "executable": sys.executable,
        "libraries": {name: _version(name) for name in LIBRARIES},
        "plugins": plugins,
        "first_party": sorted(FIRST_PARTY),
    }
    if report["libraries"]["torch"] is None:
        find("error", "libraries", "torch is not installed; polygraft needs it: pip install torch")
    if devices and report["libraries"]["torch"] is not None:
        report["devices"] = device_report()
    if weights:
        report["weights"] = _weights(catalog)
        for row in report["weights"]:
            if not row["resolved"]:
                find("warning", f"weights {row['name']}", f"does not resolve offline: {row['error']}")
    report["findings"] = findings
    return report


def format_report(report: dict[str, Any]) -> str:
    """The human-readable ``polygraft doctor`` output."""
    lines = [f"polygraft {report['polygraft']}  (Python {report['python']}, {report['platform']})", "", "libraries:"]
    for name, version in report["libraries"].items():
        lines.append(f"  {name:14s} {version or '-'}")
    lines += ["", "plugins:"]
    for row in report["plugins"]:
        extra = f"  {row['compatibility']}" if row.get("compatibility") else ""
        lines.append(f"  {row['name']:12s} {row['distribution']:22s} {row['version']:8s} {row['status']}{extra}")
    if "devices" in report:
        d = report["devices"]
        cuda = d["cuda"]
        text = (f"{cuda.get('count', 0)} x {', '.join(cuda.get('names', []))} (bf16: {cuda.get('bf16')})"
                if cuda["available"] else "not available")
        lines += ["", "devices:", f"  cpu    {d['cpu']['threads']} threads, bf16 autocast", f"  cuda   {text}",
                  f"  mps    {'available' if d['mps']['available'] else 'not available'}"]
    if "weights" in report:
        lines += ["", "weights (offline):"]
        for row in report["weights"]:
            state = "ok" if row["resolved"] else "missing"
            lines.append(f"  {row['name']:28s} {state:8s} {row.get('path') or row.get('error', '')}")
    errors = [f for f in report["findings"] if f["level"] == "error"]
    warnings = [f for f in report["findings"] if f["level"] == "warning"]
    lines += ["", f"findings: {len(errors)} error(s), {len(warnings)} warning(s)"]
    for finding in errors + warnings:
        lines.append(f"  {finding['level']}: {finding['topic']}: {finding['message']}")
    return "\n".join(lines)


def exit_code(report: dict[str, Any]) -> int:
    """1 when something is misconfigured (an error finding), else 0."""
    return 1 if any(f["level"] == "error" for f in report["findings"]) else 0

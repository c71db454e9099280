"""The versions polygraft declares: of the distribution, and of the plugin API plugins are written against.

``PLUGIN_API`` changes only when a plugin written for the previous one could break (a hook's arguments, a contract
in ``polygraft.interfaces``); a plugin declares the version it was written for as ``POLYGRAFT_PLUGIN_API`` in its
``plugin.py``, and a plugin that needs a newer API than this polygraft has is reported, not loaded (CHANGELOG.md
lists what each version changed).

Example:
    >>> from polygraft.version import PLUGIN_API, SUPPORTED_PLUGIN_APIS, __version__
    >>> PLUGIN_API in SUPPORTED_PLUGIN_APIS, __version__.count(".")
    (True, 2)
"""

__version__ = "0.1.0"
PLUGIN_API = 1
"""The contract in ``polygraft.interfaces`` and ``polygraft.hookspecs``. Additions (a new optional method with a
default, a new hook) keep the number; a change that can break a plugin written for it raises it."""
SUPPORTED_PLUGIN_APIS = (1,)
"""Plugin API versions this polygraft loads."""

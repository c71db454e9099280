"""The values of ``trainer.cache`` (imports nothing heavy: the trainer's config checks them).

Example:
    >>> from polygraft.inputs.cache.modes import cache_mode
    >>> cache_mode(True), cache_mode("no"), cache_mode("disk")
    ('auto', 'off', 'disk')
"""

from __future__ import annotations

from polygraft.errors import ConfigError

CACHE_MODES = ("auto", "memory", "disk", "off")


def cache_mode(value: bool | str) -> str:
    """``trainer.cache`` normalised: ``true``/``auto`` → ``auto``; ``false``/``off`` → ``off``; ``memory``; ``disk``."""
    if value is True or value is False:
        return "auto" if value else "off"
    mode = str(value).strip().lower()
    mode = {"true": "auto", "on": "auto", "false": "off", "no": "off", "none": "off"}.get(mode, mode)
    if mode not in CACHE_MODES:
        raise ConfigError(f"trainer.cache must be one of {CACHE_MODES} (or true/false), got {value!r}")
    return mode

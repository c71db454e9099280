"""polygraft-speech: the speech plugin for polygraft."""

__version__ = "0.1.0"

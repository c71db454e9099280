"""polygraft-text: the text plugin for polygraft."""

__version__ = "0.1.0"

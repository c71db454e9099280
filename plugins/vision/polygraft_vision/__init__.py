"""polygraft-vision: the vision plugin for polygraft."""

__version__ = "0.1.0"

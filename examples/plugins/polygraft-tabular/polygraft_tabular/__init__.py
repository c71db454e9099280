"""polygraft-tabular: an example third-party polygraft plugin that adds the ``tabular`` modality."""

__version__ = "0.1.0"

"""The version of kerasdec (one place: setup.py, ``kerasdec.__version__`` and the export metadata)."""

__version__ = "0.1.0"

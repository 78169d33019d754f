"""The papers' protocols: ``python experiments/NAME.py``, ``python -m experiments.NAME`` or
``kerasdec experiment NAME`` (see experiments/README.md)."""

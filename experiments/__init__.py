"""The papers' protocols: ``python experiments/NAME.py`` or ``python -m experiments.NAME`` from the
checkout (see experiments/README.md); the kerasdec package never imports them."""

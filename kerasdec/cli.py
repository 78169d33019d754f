"""The `kerasdec` command line: each command builds a config and makes one library call.

Library modules are imported inside the commands so `kerasdec --help` and flag errors stay fast
(importing tensorflow takes seconds).
"""

from __future__ import annotations

import logging

import click


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Log debug messages.")
@click.version_option(package_name="kerasdec")
def main(verbose: bool) -> None:
    """Train, evaluate and deploy surface-defect detectors (SegDecNet, end to end)."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")


# Commands are defined below, one section each: fit, evaluate, predict, export.

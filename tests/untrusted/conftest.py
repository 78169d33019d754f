"""Issue 20 (untrusted inputs): the four families of bad input, each tested at its root.

``untrusted_files`` (beside this file) writes hostile files: decompression bombs and headers that
declare huge images, nested and oversized split files."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))  # `from untrusted_files import ...`

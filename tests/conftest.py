"""Shared by every test: Hypothesis keeps its caches out of the tree."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from hypothesis.configuration import set_hypothesis_home_dir

if not os.environ.get("HYPOTHESIS_STORAGE_DIRECTORY"):
    # database=None in the tests' settings is not enough: Hypothesis also caches
    # Unicode tables and the constants of the sources under test in .hypothesis/.
    set_hypothesis_home_dir(Path(tempfile.gettempdir()) / "breakwater-hypothesis")

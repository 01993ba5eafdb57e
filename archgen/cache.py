"""Where archgen keeps what it derives on this machine: latency measurements
(an SQLite file) and parsed benchmark tables, both rebuilt from scratch if lost."""

from __future__ import annotations

import os
from pathlib import Path

#: the measurement cache file; its folder holds the rest of the cache
ENV_VAR = "ARCHGEN_CACHE"


def measurement_cache_path() -> Path:
    """``$ARCHGEN_CACHE`` if set, else ``~/.cache/archgen/measurements.sqlite``."""
    return Path(os.environ.get(ENV_VAR) or Path.home() / ".cache" / "archgen" / "measurements.sqlite")


def cache_folder() -> Path:
    """The folder of the measurement cache, where other derived data lives too."""
    return measurement_cache_path().parent

"""Where the score cache lives by default (its own module: the imported-logits reader needs it without the cache)."""

from __future__ import annotations

import os
from pathlib import Path


def default_cache_dir() -> Path:
    """`$DSE_CACHE_DIR`, else `$XDG_CACHE_HOME/adaptive-dse`, else `~/.cache/adaptive-dse`."""
    if os.environ.get("DSE_CACHE_DIR"):
        return Path(os.environ["DSE_CACHE_DIR"])
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]) / "adaptive-dse"
    return Path.home() / ".cache" / "adaptive-dse"

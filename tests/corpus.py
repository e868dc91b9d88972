"""Where the shared corpus lives; in CI a missing corpus fails the test instead of skipping."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def corpus_dir() -> Path:
    """shared/corpus beside the repo (or $RBAC_ADVISOR_CORPUS)."""
    env = os.environ.get("RBAC_ADVISOR_CORPUS")
    path = Path(env) if env else Path(__file__).resolve().parents[1].parent / "shared" / "corpus"
    if not path.is_dir():
        msg = f"corpus not found at {path} (set RBAC_ADVISOR_CORPUS)"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(msg, pytrace=False)
        pytest.skip(msg)
    return path

"""What the tests need from outside the repo: CI detection, the shared corpus.

Outside CI a missing prerequisite skips the test with the reason; with CI=true it fails it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NoReturn

import pytest


def in_ci() -> bool:
    """True when running under CI (CI=true / 1 / yes)."""
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def missing(message: str) -> NoReturn:
    """A prerequisite is absent: fail in CI, skip elsewhere."""
    if in_ci():
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def corpus_dir() -> Path:
    """shared/corpus beside the repo (or $RBAC_ADVISOR_CORPUS)."""
    env = os.environ.get("RBAC_ADVISOR_CORPUS")
    path = Path(env) if env else Path(__file__).resolve().parents[1].parent / "shared" / "corpus"
    if not path.is_dir():
        missing(f"corpus not found at {path} (set RBAC_ADVISOR_CORPUS)")
    return path

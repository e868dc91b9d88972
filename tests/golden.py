"""Golden-file comparison: a unified diff on mismatch, the actual output saved beside it."""

from __future__ import annotations

import difflib
from pathlib import Path

import pytest


def check(actual: str, expected_path: Path, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """Compare ``actual`` with the golden file; ``--update-golden`` rewrites it instead."""
    if request.config.getoption("--update-golden"):
        expected_path.parent.mkdir(parents=True, exist_ok=True)
        expected_path.write_text(actual, encoding="utf-8")
        return
    if not expected_path.exists():
        pytest.fail(f"{expected_path} is missing; run pytest --update-golden and review the diff")
    expected = expected_path.read_text(encoding="utf-8")
    if actual == expected:
        return
    saved = tmp_path / f"actual-{expected_path.name}"
    saved.write_text(actual, encoding="utf-8")
    diff = "".join(
        difflib.unified_diff(
            expected.splitlines(keepends=True),
            actual.splitlines(keepends=True),
            fromfile=str(expected_path),
            tofile=str(saved),
            n=2,
        )
    )
    lines = diff.splitlines()
    shown = "\n".join(lines[:120]) + (
        f"\n... {len(lines) - 120} more lines" if len(lines) > 120 else ""
    )
    pytest.fail(f"golden mismatch (actual saved at {saved}):\n{shown}", pytrace=False)

"""Options shared by the commands that read audit logs (light: no parsing imports)."""

from __future__ import annotations

import os
from typing import Annotated

import typer

# Processes beyond four gain little: the parent's merge and digest become the bound.
MAX_WORKERS = 4

# The --jobs option of the commands that read audit logs.
Jobs = Annotated[
    int | None,
    typer.Option(
        "--jobs",
        "-j",
        min=1,
        help=(
            "Processes that read large logs (16 MB of text or more). Default: one per CPU "
            "this process may run on, up to 4; 1 reads everything in this process. Each "
            "process holds its own counts: more processes take more memory in all, and "
            "1 the least. Past 150k distinct uses a process hands its counts on (a worker "
            "to the parent; one process reading alone to a temporary file in TMPDIR, added "
            "back at the end)."
        ),
    ),
]


def default_workers() -> int:
    """One process per CPU this process may run on (its affinity mask), up to four."""
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        usable = os.cpu_count() or 1
    return max(1, min(usable, MAX_WORKERS))

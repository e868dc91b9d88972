"""Write output files all-or-nothing: everything is rendered first, then moved in place."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from rbac_advisor.errors import InputError


def write_all(out_dir: Path, files: dict[str, str]) -> list[Path]:
    """Write every file via a temporary name and rename, so no half-written set remains."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise InputError(f"{out_dir}: cannot create output directory: {err.strerror}") from err
    staged: list[tuple[str, Path]] = []
    try:
        for name, text in files.items():
            fd, tmp = tempfile.mkstemp(prefix=f".{name}.", dir=out_dir)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
            staged.append((tmp, out_dir / name))
    except OSError as err:
        for tmp, _ in staged:
            Path(tmp).unlink(missing_ok=True)
        raise InputError(f"{out_dir}: cannot write outputs: {err.strerror}") from err
    for tmp, final in staged:
        os.replace(tmp, final)
    return [final for _, final in staged]

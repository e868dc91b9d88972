"""Counts one reading process hands over on the way, kept on disk until the model is built.

A process that reads everything itself (one job, standard input, small files) holds, besides
its counts, the deduplication window, the raw combinations not yet normalised and the
interned values behind every use. On a log with many distinct uses of many subjects, that
sum passed 300 MB. Past ``SPILL_AT`` distinct uses the counts go to a temporary file (as a
worker hands them to its parent) and counting starts afresh; when reading is over they are
added back one at a time, each merged into the rows before it, as a parent adds up what its
workers handed over. Adding up exports is exact (the model is mergeable), so the model is
the same whenever its counts were spilled.
"""

from __future__ import annotations

import pickle
import tempfile
from collections.abc import Callable, Iterator
from typing import IO, TypeVar

from rbac_advisor.audit import normalise
from rbac_advisor.errors import ResourceError
from rbac_advisor.usage_builder import Export, UsageBuilder

T = TypeVar("T")

SPILL_AT = 150_000  # distinct uses counted in memory before they go to disk
_BUFFER = 1 << 16


class SpillError(ResourceError):
    """The temporary file holding counts could not be written or read back."""

    def __init__(self, where: str, reason: str) -> None:
        """Name the directory and why."""
        super().__init__(
            f"cannot keep counts in a temporary file in {where} ({reason}): "
            "set TMPDIR to a writable directory with free space"
        )


class Spool:
    """Exports written one after another to an unnamed temporary file."""

    def __init__(self, directory: str | None = None) -> None:
        """Write under ``directory`` (default: the system's temporary directory)."""
        self._directory = directory
        self._file: IO[bytes] | None = None
        self.parts = 0

    @property
    def where(self) -> str:
        """The directory the file is (or would be) in."""
        return self._directory or tempfile.gettempdir()

    def put(self, state: Export) -> None:
        """Append one export (pickled as it is made: no copy of it in memory).

        Raises:
            SpillError: the file could not be made or written (no space, no directory).
        """
        try:
            if self._file is None:
                # Held open across calls and closed by drain() or close().
                self._file = tempfile.TemporaryFile(  # noqa: SIM115
                    prefix="rbac-advisor-", dir=self._directory
                )
            with open(self._file.fileno(), "wb", buffering=_BUFFER, closefd=False) as f:
                pickle.dump(state, f, protocol=pickle.HIGHEST_PROTOCOL)
        except OSError as err:
            self.close()
            raise SpillError(self.where, err.strerror or str(err)) from None
        self.parts += 1

    def drain(self) -> Iterator[Export]:
        """The exports in the order they were put, each read when asked for; then closes.

        Raises:
            SpillError: the file could not be read back.
        """
        f, self._file = self._file, None
        if f is None:
            return
        try:
            f.seek(0)
            with open(f.fileno(), "rb", buffering=_BUFFER, closefd=False) as r:
                for _ in range(self.parts):
                    try:
                        state: Export = pickle.load(r)
                    except OSError as err:
                        raise SpillError(self.where, err.strerror or str(err)) from None
                    except (EOFError, pickle.UnpicklingError) as err:
                        raise SpillError(self.where, f"read back short: {err}") from None
                    yield state
        finally:
            self.parts = 0
            f.close()

    def close(self) -> None:
        """Remove the file (it has no name: closing it frees its space)."""
        if self._file is not None:
            self._file.close()
            self._file = None
        self.parts = 0


def add_up(into: UsageBuilder, state: Export) -> None:
    """Add one handed-over export to ``into`` and merge it with what was added before.

    One set of merged rows is held however many exports come (``into`` counts nothing
    itself: it holds what others counted).
    """
    into.absorb_export(state, own=True)
    into.compact()


def handing(
    blocks: Iterator[T], builder: UsageBuilder, hand: Callable[[Export], None], at: int
) -> Iterator[T]:
    """``blocks``, handing the builder's counts over between two once they reach ``at`` uses.

    Between blocks every line before has been counted or waits in the deduplication window,
    which stays. The normaliser lets go of its interned values too: the uses held them.
    """
    for block in blocks:
        yield block
        if builder.uses >= at:
            hand(builder.hand_over())
            normalise.forget()

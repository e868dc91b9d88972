"""Write output files all-or-nothing: written under a temporary name, then moved in place.

Every target is checked before anything is written. It must not be one of the run's
inputs, and when it exists it must be a regular file: a symlink is followed and the file
it points to is replaced (the link stays). A new file gets the usual mode (0666 less the
umask); a replaced file keeps its mode. Each file is written under a temporary name next
to its target and renamed over it, so no half-written file remains.
"""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from rbac_advisor.errors import InputError


@dataclass(frozen=True, slots=True)
class Target:
    """A checked output file: as named, the file to replace, and the mode to give it."""

    shown: Path
    real: Path
    mode: int


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a named pipe"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "a special file"


def _files_under(path: str) -> Iterator[str]:
    """``path`` itself, or every file below it when it is a directory."""
    if not os.path.isdir(path):
        yield path
        return
    for root, _dirs, files in os.walk(path):
        for name in files:
            yield os.path.join(root, name)


class _Replayed:
    """An iterable read from ``source`` at most once, however often it is iterated."""

    def __init__(self, source: Iterable[str]) -> None:
        self._source = iter(source)
        self._seen: list[str] = []

    def __iter__(self) -> Iterator[str]:
        yield from self._seen
        for item in self._source:
            self._seen.append(item)
            yield item


def input_files(
    *, audit: Sequence[str] = (), manifests: Sequence[str] = (), files: Sequence[str] = ()
) -> Iterable[str]:
    """The files a run reads: audit logs and manifests with directories expanded.

    Expanded when first iterated (a target that does not exist yet needs no comparison),
    at most once. A path that cannot be expanded is given as is; reading it reports the
    problem.
    """
    return _Replayed(_input_files(audit, manifests, files))


def _input_files(
    audit: Sequence[str], manifests: Sequence[str], files: Sequence[str]
) -> Iterator[str]:
    from rbac_advisor import logfiles
    from rbac_advisor.cli.rbacfiles import manifest_files

    for path in audit:
        try:
            yield from logfiles.expand([path])
        except InputError:
            yield path
    for path in manifests:
        try:
            yield from (str(p) for p in manifest_files([path]))
        except InputError:
            yield path
    for path in files:
        yield from _files_under(path)


def check_target(path: Path, inputs: Iterable[str] = ()) -> Target:
    """Check that ``path`` can be written without harm, before any work is done.

    Raises:
        InputError: the target is one of ``inputs``, exists but is not a regular file,
            or its directory does not exist.
    """
    real = Path(os.path.realpath(path))
    try:
        st = os.stat(real)
    except FileNotFoundError:
        parent = real.parent
        if not parent.exists():
            raise InputError(f"{path}: cannot write: directory {parent} does not exist") from None
        if not parent.is_dir():
            raise InputError(f"{path}: cannot write: {parent} is not a directory") from None
        return Target(path, real, 0o666 & ~_umask())
    except OSError as err:
        raise InputError(f"{path}: cannot write: {err.strerror or err}") from None
    if not stat.S_ISREG(st.st_mode):
        raise InputError(f"{path}: cannot write: it is {_kind(st.st_mode)}, not a regular file")
    for name in inputs:
        try:
            # "-" is standard input, which may be a file (`< audit.log`, /dev/stdin)
            other = os.fstat(0) if name == "-" else os.stat(name)
        except OSError:
            continue
        if (other.st_dev, other.st_ino) == (st.st_dev, st.st_ino):
            raise InputError(f"{path}: will not overwrite: it is one of the inputs")
    return Target(path, real, stat.S_IMODE(st.st_mode))


def _stage(target: Target, pieces: Iterable[str]) -> str:
    """Write ``pieces`` in order to a temporary file next to the target; return its name.

    The pieces are read as they are written, so a text made in pieces is never held
    whole. Whatever fails, making a piece included, the temporary file is removed.
    """
    fd, tmp = tempfile.mkstemp(prefix=f".{target.real.name}.", dir=target.real.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.writelines(pieces)
            os.fchmod(fh.fileno(), target.mode)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return tmp


def write_file(path: Path, text: str, inputs: Iterable[str] = ()) -> Path:
    """Write one file via a temporary name and rename (see the module docstring).

    Raises:
        InputError: the checks of ``check_target``, or the file cannot be written.
    """
    return write_pieces(path, (text,), inputs)


def write_pieces(path: Path, pieces: Iterable[str], inputs: Iterable[str] = ()) -> Path:
    """Write one file from consecutive pieces of its text, as :func:`write_file` does.

    The file appears whole or not at all: an error while the pieces are made or written
    leaves the target as it was and no temporary file behind.

    Raises:
        InputError: the checks of ``check_target``, or the file cannot be written.
    """
    target = check_target(path, inputs)
    tmp = ""
    try:
        tmp = _stage(target, pieces)
        os.replace(tmp, target.real)
    except OSError as err:
        if tmp:
            Path(tmp).unlink(missing_ok=True)
        raise InputError(f"{path}: cannot write: {err.strerror or err}") from err
    return path


def write_all(out_dir: Path, files: dict[str, str], inputs: Iterable[str] = ()) -> list[Path]:
    """Write every file via a temporary name and rename, so no half-written set remains.

    Raises:
        InputError: the directory cannot be created, a target fails ``check_target``,
            or a file cannot be written.
    """
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise InputError(f"{out_dir}: cannot create output directory: {err.strerror}") from err
    names = _Replayed(inputs)
    targets = [(check_target(out_dir / name, names), text) for name, text in files.items()]
    staged: list[tuple[str, Target]] = []
    try:
        for target, text in targets:
            staged.append((_stage(target, (text,)), target))
        while staged:
            tmp, target = staged[0]
            os.replace(tmp, target.real)
            staged.pop(0)
    except BaseException as err:
        for tmp, _ in staged:
            Path(tmp).unlink(missing_ok=True)
        if isinstance(err, OSError):
            raise InputError(f"{out_dir}: cannot write outputs: {err.strerror}") from err
        raise
    return [target.shown for target, _ in targets]

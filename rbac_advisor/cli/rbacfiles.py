"""Read ``--rbac`` paths: files and directories of YAML or JSON manifests, or ``-`` for stdin.

Directories are walked recursively (``*.yaml``, ``*.yml``, ``*.json``, hidden entries
skipped, sorted so runs are reproducible). Files hold one or many YAML documents, a JSON
object, or a ``kind: List`` as ``kubectl get -o yaml|json`` writes.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import yaml

from rbac_advisor.aggregation import resolve
from rbac_advisor.errors import InputError, ManifestError
from rbac_advisor.manifests import ParseOptions, parse_objects
from rbac_advisor.rbac import Snapshot

SUFFIXES = (".yaml", ".yml", ".json")
# libyaml's loader is several times faster on large dumps; same safe semantics.
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def manifest_files(paths: Iterable[Path | str]) -> list[Path | str]:
    """Expand directories into their manifest files; ``-`` stays as stdin.

    Raises:
        InputError: a path that does not exist, or a directory without manifests.
    """
    out: list[Path | str] = []
    for raw in paths:
        if str(raw) == "-":
            out.append("-")
            continue
        path = Path(raw)
        if path.is_dir():
            found = sorted(
                p
                for p in path.rglob("*")
                if p.is_file()
                and p.suffix.lower() in SUFFIXES
                and not any(part.startswith(".") for part in p.relative_to(path).parts)
            )
            if not found:
                raise InputError(f"{path}: no .yaml, .yml or .json files in this directory")
            out.extend(found)
        elif path.exists():
            out.append(path)
        else:
            raise InputError(f"{path}: no such file or directory")
    return out


def read_documents(source: Path | str) -> Iterator[tuple[str, object]]:
    """Yield (label, document) for every document in one file (``-`` = stdin).

    Raises:
        ManifestError: unreadable file, invalid YAML or JSON (with the line).
    """
    label = "<stdin>" if source == "-" else str(source)
    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ManifestError(label, "", f"not UTF-8 text ({err.reason})") from None
    except OSError as err:
        raise ManifestError(label, "", err.strerror or str(err)) from None
    if label.lower().endswith(".json"):
        try:
            yield label, json.loads(text)
        except json.JSONDecodeError as err:
            raise ManifestError(label, "", f"line {err.lineno}: invalid JSON: {err.msg}") from None
        return
    try:
        docs = list(yaml.load_all(text, Loader=_Loader))
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ManifestError(label, "", f"{where}invalid YAML: {problem}") from None
    many = sum(d is not None for d in docs) > 1
    for i, doc in enumerate(docs, 1):
        yield (f"{label} (document {i})" if many else label), doc


def load_rbac(paths: Sequence[Path | str], *, default_namespace: str = "default") -> Snapshot:
    """Read and parse ``paths`` as written: aggregation is not resolved (see load_snapshot).

    Raises:
        InputError: a missing path; ManifestError for unreadable or invalid manifests.
    """
    files = manifest_files(paths)
    docs = (doc for f in files for doc in read_documents(f))
    snapshot = parse_objects(docs, ParseOptions(default_namespace=default_namespace))
    return dataclasses.replace(snapshot, source=", ".join(str(p) for p in paths))


def load_snapshot(
    paths: Sequence[Path | str], *, default_namespace: str = "default", aggregate: bool = True
) -> Snapshot:
    """Read, parse and (unless ``aggregate`` is False) resolve aggregation for ``paths``.

    The snapshot's warnings hold loading and aggregation notes for the CLI to print.

    Raises:
        InputError: a missing path; ManifestError for unreadable or invalid manifests.
    """
    snapshot = load_rbac(paths, default_namespace=default_namespace)
    if not aggregate:
        return snapshot
    resolved, drift = resolve(snapshot)
    return dataclasses.replace(resolved, warnings=(*resolved.warnings, *drift))

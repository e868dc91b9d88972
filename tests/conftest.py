"""Shared pytest fixtures."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

# ---- real control plane (tests/kube.py) ----------------------------------------------------
from kube import Kube, MissingBinaries, check_binaries


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.fixture(scope="session")
def kube(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kube]:
    """etcd + kube-apiserver + kube-controller-manager for the whole session.

    Missing binaries fail the test in CI and skip it elsewhere, naming the build script.
    """
    try:
        check_binaries()
    except MissingBinaries as err:
        if _in_ci():
            pytest.fail(str(err), pytrace=False)
        pytest.skip(str(err))
    for attempt in (1, 2):  # a second try covers a free port taken before the server bound it
        cluster = Kube(tmp_path_factory.mktemp("kube"))
        try:
            cluster.start()
            break
        except RuntimeError as err:
            if attempt == 2:
                pytest.fail(f"control plane did not start: {err}", pytrace=False)
    try:
        yield cluster
    finally:
        cluster.stop()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden",
        action="store_true",
        help="rewrite fixtures/*/expected/* from the current output (review the git diff)",
    )

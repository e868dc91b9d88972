"""Shared pytest fixtures."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

# ---- real control plane (tests/kube.py) ----------------------------------------------------
from corpus import in_ci, missing
from kube import Kube, MissingBinaries, check_binaries


@pytest.fixture(scope="session")
def kube(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kube]:
    """etcd + kube-apiserver + kube-controller-manager for the whole session.

    Missing binaries fail the test in CI and skip it elsewhere, naming the build script.
    """
    try:
        check_binaries()
    except MissingBinaries as err:
        missing(str(err))
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


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Under CI a skipped test is a failure: the run must exercise the real things."""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = len(reporter.stats.get("skipped", [])) if reporter is not None else 0
    if in_ci() and skipped and exitstatus == 0:
        if reporter is not None:
            reporter.write_line(f"error: {skipped} test(s) skipped under CI=true", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED

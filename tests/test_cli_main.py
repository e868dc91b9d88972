"""The installed entry point: exit codes and one-line errors, through a real process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rbac_advisor", *args],
        capture_output=True, text=True, cwd=cwd, timeout=120, check=False,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("args", "code", "needle"),
    [
        (("analyze", "--bogus"), 2, "No such option: --bogus"),
        (("can-i",), 2, "Missing argument"),
        (("analyze", "--max-names", "x"), 2, "--max-names"),
        (("analyze", "--audit", "/nonexistent.log", "--rbac", "fixtures/demo/rbac.yaml"), 3,
         "/nonexistent.log"),
        (("analyze", "--audit", "fixtures/demo/audit.jsonl"), 2, "no RBAC given"),
        (("analyze", "--rbac", "fixtures/demo/rbac.yaml"), 2, "no audit evidence given"),
        (("usage",), 2, "give audit log paths"),
        (("usage", "fixtures/demo/audit.jsonl", "--since", "bogus"), 2, "--since 'bogus'"),
        (("usage", "fixtures/demo/rbac.yaml"), 3, "fixtures/demo/rbac.yaml:1:"),
    ],
)  # fmt: skip
def test_errors_are_one_line(args: tuple[str, ...], code: int, needle: str) -> None:
    proc = run(*args, cwd=REPO)
    assert proc.returncode == code, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ") and needle in lines[0]
    assert "Traceback" not in proc.stderr


def test_analyze_refuses_a_window_without_requests(tmp_path: Path) -> None:
    out = tmp_path / "review"
    proc = run(
        "analyze", "--audit", "fixtures/demo/audit.jsonl", "--rbac", "fixtures/demo/rbac.yaml",
        "--since", "1h", "--out", str(out), cwd=REPO,
    )  # fmt: skip
    assert proc.returncode == 3
    assert proc.stderr.strip().splitlines() == [
        "error: no request inside the observation window: all 164 requests fall outside "
        "--since/--until; widen the window or check the logs' dates"
    ]
    assert not out.exists()  # nothing written: every grant would have looked unused


def test_version_and_help() -> None:
    assert run("--version").stdout.strip().startswith("rbac-advisor ")
    help_text = run("--help").stdout
    for command in ("analyze", "usage", "snapshot", "verify", "can-i", "demo"):
        assert command in help_text
    for command in ("analyze", "usage", "snapshot", "verify", "can-i", "demo"):
        assert f"rbac-advisor {command} " in run(command, "--help").stdout  # an example


def test_help_prose_wraps_at_the_terminal_width() -> None:
    env = {**os.environ, "COLUMNS": "200"}
    # Each phrase spans a line break of the source text: on a wide terminal it must come
    # out on one line.
    for command, phrase in (
        ("usage", "whatever stages were logged, with the subject (the impersonated user"),
        ("analyze", "the cluster's RBAC (a live cluster or a `kubectl get -o yaml` dump)"),
    ):
        proc = subprocess.run(
            [sys.executable, "-m", "rbac_advisor", command, "--help"],
            capture_output=True, text=True, env=env, timeout=120, check=False,
        )  # fmt: skip
        assert any(phrase in x for x in proc.stdout.splitlines()), proc.stdout
    assert "rbac-advisor usage --load node1.usage.json" in run("usage", "--help").stdout


def test_reflow_joins_prose_and_keeps_examples() -> None:
    from rbac_advisor.cli.helptext import reflow

    text = "Title line.\n\nOne sentence\nsplit here.\n\nExamples:\n\n  tool a\n  tool b\n"
    assert (
        reflow(text) == "Title line.\n\nOne sentence split here.\n\nExamples:\n\n  tool a\n  tool b"
    )


def test_demo_writes_the_four_outputs(tmp_path: Path) -> None:
    proc = run("demo", "--out", str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stderr
    for name in ("roles.yaml", "prune.yaml", "findings.json", "report.html"):
        assert (tmp_path / "out" / name).stat().st_size > 100
    findings = json.loads((tmp_path / "out" / "findings.json").read_text())
    assert findings["proof"]["sound"] is True
    assert "report.html" in proc.stderr


def test_empty_rbac_says_nothing_to_apply_and_warns(tmp_path: Path) -> None:
    rbac = tmp_path / "rbac.yaml"
    rbac.write_text("apiVersion: v1\nkind: List\nitems: []\n")
    proc = run(
        "analyze", "--audit", str(REPO / "fixtures/demo/audit.jsonl"), "--rbac", str(rbac),
        "--out", str(tmp_path / "out"),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "are not allowed by this RBAC" in proc.stderr
    assert "roles.yaml holds no objects" in proc.stderr
    assert "prune.yaml holds no objects" in proc.stderr

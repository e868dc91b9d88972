"""Golden scenarios: the whole review on fixed inputs must give the same bytes.

fixtures/demo was recorded from a real kube-apiserver (scripts/record-demo.py); the
"noreason" variant strips the authorization annotations, as older or filtered logs lack them.
fixtures/audit2rbac pairs the public audit2rbac demo log (from the shared corpus) with a
hand-written RBAC. On a mismatch the diff is printed; `pytest --update-golden` rewrites.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest
from corpus import corpus_dir
from golden import check

from rbac_advisor.cli.review import Inputs, review

REPO = Path(__file__).resolve().parents[1]
NOW = datetime(2026, 11, 27, 12, 0, 0, tzinfo=UTC)
OUTPUTS = ("roles.yaml", "prune.yaml", "findings.json", "report.html")


def _strip_reasons(src: Path, dst: Path) -> None:
    with src.open(encoding="utf-8") as fin, dst.open("w", encoding="utf-8") as fout:
        for line in fin:
            event = json.loads(line)
            ann = event.get("annotations") or {}
            for key in ("authorization.k8s.io/decision", "authorization.k8s.io/reason"):
                ann.pop(key, None)
            fout.write(json.dumps(event, separators=(",", ":")) + "\n")


def _run(workdir: Path, audit: str, rbac: str, out: Path) -> dict[str, str]:
    """Run the review with paths relative to ``workdir`` so outputs do not name this machine."""
    old = Path.cwd()
    os.chdir(workdir)
    try:
        review(
            Inputs(audit=[audit], rbac=[Path(rbac)]),
            out=out,
            max_names=5,
            attribute_all=False,
            keep_unobservable=True,
            fail_on_findings=False,
            now=NOW,
            command=f"rbac-advisor analyze --audit {audit} --rbac {rbac}",
        )
    finally:
        os.chdir(old)
    return {name: (out / name).read_text(encoding="utf-8") for name in OUTPUTS}


def _check_all(
    actual: dict[str, str], expected: Path, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    for name in OUTPUTS:
        check(actual[name], expected / name, request, tmp_path)


def test_demo(request: pytest.FixtureRequest, tmp_path: Path) -> None:
    demo = REPO / "fixtures" / "demo"
    actual = _run(demo, "audit.jsonl", "rbac.yaml", tmp_path / "out")
    _check_all(actual, demo / "expected", request, tmp_path)
    findings = json.loads(actual["findings.json"])
    assert findings["proof"]["sound"] and findings["proof"]["changed"] == 0
    assert any(b["change"]["action"] == "tighten" for b in findings["bindings"])


def test_demo_without_reason_annotations(request: pytest.FixtureRequest, tmp_path: Path) -> None:
    demo = REPO / "fixtures" / "demo"
    work = tmp_path / "noreason"
    work.mkdir()
    _strip_reasons(demo / "audit.jsonl", work / "audit.jsonl")
    (work / "rbac.yaml").write_bytes((demo / "rbac.yaml").read_bytes())
    actual = _run(work, "audit.jsonl", "rbac.yaml", tmp_path / "out")
    _check_all(actual, demo / "expected-noreason", request, tmp_path)
    findings = json.loads(actual["findings.json"])
    assert all(u["attributedBy"] == "evaluation" for b in findings["bindings"] for u in b["uses"])


def test_audit2rbac_impersonation(request: pytest.FixtureRequest, tmp_path: Path) -> None:
    fixture = REPO / "fixtures" / "audit2rbac"
    work = tmp_path / "a2r"
    work.mkdir()
    (work / "demo.log").write_bytes(
        (corpus_dir() / "audit" / "native" / "audit2rbac" / "demo.log").read_bytes()
    )
    (work / "rbac.yaml").write_bytes((fixture / "rbac.yaml").read_bytes())
    actual = _run(work, "demo.log", "rbac.yaml", tmp_path / "out")
    _check_all(actual, fixture / "expected", request, tmp_path)
    findings = json.loads(actual["findings.json"])
    by_name = {b["name"]: b for b in findings["bindings"]}
    # system:admin impersonated everyone: its impersonate use lands nowhere (system:masters),
    # bob's pod listing in default is the only use of bob-pods, alice's grant is idle.
    assert by_name["alice-impersonates"]["idle"]
    assert by_name["alice-impersonates"]["change"]["action"] == "remove"
    assert by_name["bob-pods"]["change"]["action"] == "tighten"
    assert by_name["sa1-reader"]["change"]["action"] == "tighten"

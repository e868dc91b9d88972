"""Requests the apiserver authorizes twice: the usage model must record both checks."""

from __future__ import annotations

from pathlib import Path

import pytest
from audit_samples import event, line, read_logs

from rbac_advisor.events import Decision

SSA_URI = "/api/v1/namespaces/team-a/configmaps/web?fieldManager=ci&force=true"
CM = {"resource": "configmaps", "namespace": "team-a", "name": "web", "apiVersion": "v1"}
EXEC = {
    "resource": "pods",
    "subresource": "exec",
    "namespace": "ns",
    "name": "p",
    "apiVersion": "v1",
}


def _verbs(
    tmp_path: Path, *events: dict[str, object], workers: int = 1
) -> dict[tuple[str, str], int]:
    log = tmp_path / "audit.log"
    log.write_bytes(b"\n".join(line(e) for e in events) + b"\n")
    model = read_logs([str(log)], progress=False, workers=workers)
    out: dict[tuple[str, str], int] = {}
    for key, st in model.entries.items():
        if key.decision is Decision.ALLOW:
            a = key.access
            out[(a.verb, a.combined_resource)] = (
                out.get((a.verb, a.combined_resource), 0) + st.count
            )
    return out


@pytest.mark.parametrize("workers", [1, 2])
def test_server_side_apply_that_creates_also_needs_create(tmp_path: Path, workers: int) -> None:
    created = event(audit_id="a", verb="patch", uri=SSA_URI, ref=CM, code=201)
    updated = event(audit_id="b", verb="patch", uri=SSA_URI, ref=CM, code=200)
    verbs = _verbs(tmp_path, created, updated, workers=workers)
    assert verbs == {("patch", "configmaps"): 2, ("create", "configmaps"): 1}


LEASE_URI = "/apis/coordination.k8s.io/v1/namespaces/ns1/leases/my-lock"
LEASE = {
    "resource": "leases",
    "apiGroup": "coordination.k8s.io",
    "namespace": "ns1",
    "name": "my-lock",
    "apiVersion": "v1",
}


@pytest.mark.parametrize("workers", [1, 2])
def test_an_update_that_creates_also_needs_create(tmp_path: Path, workers: int) -> None:
    # A PUT to a missing object of a resource that allows create on update (leases) is
    # authorized as create with the object's name too, and answered 201 (handlers/update.go).
    created = event(audit_id="a", verb="update", uri=LEASE_URI, ref=LEASE, code=201)
    renewed = event(audit_id="b", verb="update", uri=LEASE_URI, ref=LEASE, code=200)
    verbs = _verbs(tmp_path, created, renewed, workers=workers)
    assert verbs == {("update", "leases"): 2, ("create", "leases"): 1}


def test_websocket_exec_also_needs_create(tmp_path: Path) -> None:
    ws = event(
        audit_id="a",
        verb="get",
        uri="/api/v1/namespaces/ns/pods/p/exec?command=sh",
        ref=EXEC,
        code=101,
        stage="ResponseStarted",
    )
    assert _verbs(tmp_path, ws) == {("get", "pods/exec"): 1, ("create", "pods/exec"): 1}


def test_denied_requests_imply_nothing(tmp_path: Path) -> None:
    denied = event(audit_id="a", verb="patch", uri=SSA_URI, ref=CM, code=403, decision="forbid")
    assert _verbs(tmp_path, denied) == {}

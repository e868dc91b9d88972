"""Impersonated groups against the real apiserver: which ones were checked, from the log.

kubectl sends ``--as-group`` values as Impersonate-Group headers in order; the apiserver
checks each and appends ``system:authenticated`` itself when it was not requested. The log
keeps the order, so a requested ``system:authenticated`` that is not last is recorded as
the permission use it is: without a grant for it, the same request is refused.
"""

from __future__ import annotations

import time
from typing import Any

from kube import Kube

from rbac_advisor.audit import parse_record
from rbac_advisor.events import Decision
from rbac_advisor.rbac import Access

NS = "imp-groups"
IMPERSONATOR = f"system:serviceaccount:{NS}:impersonator"


def _objects(groups: list[str]) -> str:
    names = ", ".join(f'"{g}"' for g in groups)
    return f"""
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {{name: imp-groups-impersonator}}
rules:
- {{apiGroups: [""], resources: [users], verbs: [impersonate], resourceNames: [zed]}}
- {{apiGroups: [""], resources: [groups], verbs: [impersonate], resourceNames: [{names}]}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {{name: imp-groups-impersonator}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: imp-groups-impersonator}}
subjects: [{{kind: ServiceAccount, name: impersonator, namespace: {NS}}}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {{name: pod-reader, namespace: {NS}}}
rules: [{{apiGroups: [""], resources: [pods], verbs: [list]}}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: team-z-reads-pods, namespace: {NS}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: pod-reader}}
subjects: [{{apiGroup: rbac.authorization.k8s.io, kind: Group, name: team-z}}]
"""


def _until(ok: Any, what: str, timeout: float = 20) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = ok()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} within {timeout}s")
        time.sleep(0.2)


def test_a_requested_system_authenticated_group_is_checked_and_recorded(kube: Kube) -> None:
    kube.ensure_namespace(NS)
    cfg = kube.sa_kubeconfig(NS, "impersonator")
    kube.kubectl("admin", "apply", "-f", "-", input=_objects(["team-z"]))

    def list_pods(*groups: str) -> Any:
        flags = [f"--as-group={g}" for g in groups]
        return kube.kubectl(cfg, "--as=zed", *flags, "get", "pods", "-n", NS, check=False)

    kube.wait_allowed(IMPERSONATOR, "impersonate", "users", name="zed")
    kube.wait_allowed(IMPERSONATOR, "impersonate", "groups", name="team-z")
    kube.wait_allowed("zed", "list", "pods", namespace=NS, groups=["team-z"])
    assert list_pods("team-z").returncode == 0
    refused = list_pods("system:authenticated", "team-z")
    assert refused.returncode != 0 and "Forbidden" in refused.stderr, refused.stderr
    kube.kubectl("admin", "apply", "-f", "-", input=_objects(["team-z", "system:authenticated"]))
    kube.wait_allowed(IMPERSONATOR, "impersonate", "groups", name="system:authenticated")
    assert list_pods("system:authenticated", "team-z").returncode == 0

    def logged() -> dict[tuple[str, ...], Any]:
        """The first list of pods logged per impersonated group list, and () the first
        request refused (kubectl's discovery: it stops there)."""
        out: dict[tuple[str, ...], Any] = {}
        for e in kube.audit_events():
            if e.get("stage") != "ResponseComplete" or e["user"]["username"] != IMPERSONATOR:
                continue
            ref = e.get("objectRef") or {}
            if (e.get("responseStatus") or {}).get("code") == 403:
                out.setdefault((), e)
            elif e.get("verb") == "list" and ref.get("resource") == "pods":
                groups = (e.get("impersonatedUser") or {}).get("groups", [])
                out.setdefault(tuple(groups), e)
        return out

    want = {(), ("team-z", "system:authenticated"), ("system:authenticated", "team-z")}
    events = _until(lambda: (got := logged()) and want <= set(got) and got, "not logged")

    user_check = Access("impersonate", "", "users", "", "", "zed")

    def group_check(g: str) -> Access:
        return Access("impersonate", "", "groups", "", "", g)

    # Refused before authorization (no impersonatedUser): the check that failed.
    no = parse_record(events[()]).events[0]
    assert no.decision is Decision.FORBID and no.code == 403 and no.impersonator is None
    assert no.impersonation == (group_check("system:authenticated"),)
    # Added by the apiserver (last): only the requested group was checked.
    added = parse_record(events[("team-z", "system:authenticated")]).events[0]
    assert added.decision is Decision.ALLOW
    assert added.impersonation == (user_check, group_check("team-z"))
    # Requested first: checked (the refusal above shows it), and recorded.
    asked = parse_record(events[("system:authenticated", "team-z")]).events[0]
    assert asked.decision is Decision.ALLOW
    assert asked.impersonation == (
        user_check,
        group_check("system:authenticated"),
        group_check("team-z"),
    )
    assert asked.identity.groups == ("system:authenticated", "team-z")

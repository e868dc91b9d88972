"""Logs without group memberships (GKE): the allow reason attributes group grants.

A GKE audit entry names the user but none of its groups, so evaluating RBAC cannot match
the user to a Group subject the apiserver did match. The ``authorization.k8s.io/reason``
annotation names the binding and the subject that allowed the request; that binding must
count as used, and its group must keep the permission.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from rbac_builders import cr, rb, req, rule, snap, subject, who

from rbac_advisor import proof, replay
from rbac_advisor.analysis import Result, run
from rbac_advisor.authorizer import Authorizer
from rbac_advisor.cli.rbacfiles import load_rbac
from rbac_advisor.diff import Observation
from rbac_advisor.events import Decision, ReasonRef
from rbac_advisor.rbac import (
    Access,
    Binding,
    BindingKind,
    Identity,
    Request,
    Role,
    Snapshot,
    Subject,
)

TEAM = "team-a"
DEVS = "devs@example.com"
OPS = "ops@example.com"
ALICE = who("alice@example.com", "system:authenticated")
BOB = who("bob@example.com", "system:authenticated")
LIST_PODS = req(f"list pods {TEAM}")

POD_LISTER = cr("pod-lister", rule("list,get", "", "pods"))
SECRET_READER = cr("secret-reader", rule("get", "", "secrets"))
DEVS_PODS = rb(TEAM, "ClusterRole:pod-lister", f"Group:{DEVS}", name="devs-pods")
BOB_PODS = rb(TEAM, "ClusterRole:pod-lister", "User:bob@example.com", name="bob-pods")


def _seen(
    identity: Identity,
    access: Access,
    via: Binding | None = None,
    cited: str | None = None,
    decision: Decision = Decision.ALLOW,
) -> Observation:
    """One allowed request; ``via`` the binding its reason names, ``cited`` its subject."""
    return Observation(
        identity,
        access,
        decision,
        1,
        0.0,
        1.0,
        frozenset({0}),
        via=via.key if via is not None else None,
        via_subject=subject(cited) if cited is not None else None,
    )


def _s8(*extra: Role | Binding) -> Snapshot:
    """pod-lister bound to the devs group and to bob in team-a, plus ``extra``."""
    return snap(POD_LISTER, DEVS_PODS, BOB_PODS, *extra)


def _s8_traffic(cited: bool) -> list[Observation]:
    """alice lists pods through devs-pods (as a member of devs), bob through bob-pods."""
    return [
        _seen(ALICE, LIST_PODS, DEVS_PODS, f"Group:{DEVS}" if cited else None),
        _seen(BOB, LIST_PODS, BOB_PODS, "User:bob@example.com" if cited else None),
    ]


def _analyse(snapshot: Snapshot, observations: list[Observation]) -> Result:
    result = run(snapshot, observations)
    assert result.proof.sound
    return result


def _action(result: Result, name: str) -> str:
    (change,) = [c for c in result.plan.changes if c.binding.name == name]
    return change.action


def _allows(snapshot: Snapshot, identity: Identity, access: Access) -> bool:
    return Authorizer(snapshot).allows(Request(identity, access))


def _member(group: str) -> Identity:
    """An identity in ``group``, as the apiserver (not the log) sees alice."""
    return who(ALICE.user, "system:authenticated", group)


@pytest.mark.parametrize("cited", [True, False], ids=["subject-cited", "subject-unknown"])
def test_group_binding_named_by_the_reason_is_kept(cited: bool) -> None:
    result = _analyse(_s8(), _s8_traffic(cited))
    assert result.findings.unexplained == ()
    (devs,) = [f for f in result.findings.bindings if f.binding.name == "devs-pods"]
    (use,) = devs.uses
    assert use.identity == ALICE and use.by_reason
    assert use.subject == subject(f"Group:{DEVS}")
    assert _action(result, "devs-pods") == "tighten"
    after = result.after
    assert _allows(after, _member(DEVS), LIST_PODS)
    assert not _allows(after, _member(DEVS), req(f"get pods {TEAM} p1"))
    assert not _allows(after, _member(DEVS), req("list pods team-b"))


@pytest.mark.parametrize("cited", [True, False], ids=["subject-cited", "subject-unknown"])
def test_user_binding_used_by_its_user_is_kept(cited: bool) -> None:
    result = _analyse(_s8(), _s8_traffic(cited))
    assert _action(result, "bob-pods") == "tighten"
    assert _allows(result.after, BOB, LIST_PODS)
    assert not _allows(result.after, BOB, req(f"get pods {TEAM} p1"))


def test_group_binding_no_reason_names_is_still_pruned() -> None:
    ops = rb(TEAM, "ClusterRole:pod-lister", f"Group:{OPS}", name="ops-pods")
    result = _analyse(_s8(ops), _s8_traffic(True))
    assert _action(result, "ops-pods") == "remove"
    assert ops in result.plan.prune
    assert not _allows(result.after, _member(OPS), LIST_PODS)


def test_reason_naming_a_binding_whose_role_does_not_allow_is_ignored() -> None:
    secrets = rb(TEAM, "ClusterRole:secret-reader", f"Group:{DEVS}", name="devs-secrets")
    snapshot = snap(POD_LISTER, SECRET_READER, secrets)
    seen = _seen(ALICE, LIST_PODS, secrets, f"Group:{DEVS}")
    result = _analyse(snapshot, [seen])
    assert result.findings.unexplained == (seen,)
    assert _action(result, "devs-secrets") == "remove"


def test_reason_naming_a_binding_of_another_namespace_is_ignored() -> None:
    seen = _seen(ALICE, req("list pods team-b"), DEVS_PODS, f"Group:{DEVS}")
    result = _analyse(_s8(), [seen])
    assert result.findings.unexplained == (seen,)
    assert _action(result, "devs-pods") == "remove"


def test_reason_naming_a_missing_binding_is_ignored() -> None:
    gone = rb(TEAM, "ClusterRole:pod-lister", f"Group:{DEVS}", name="gone")
    seen = _seen(ALICE, LIST_PODS, gone, f"Group:{DEVS}")
    result = _analyse(_s8(), [seen])
    assert result.findings.unexplained == (seen,)
    assert _action(result, "devs-pods") == "remove"


def test_cited_subject_not_in_the_binding_is_not_credited() -> None:
    seen = _seen(ALICE, LIST_PODS, DEVS_PODS, f"Group:{OPS}")
    result = _analyse(_s8(), [seen])
    assert result.findings.unexplained == (seen,)
    assert _action(result, "devs-pods") == "remove"


def test_only_the_cited_group_of_several_is_kept() -> None:
    both = rb(TEAM, "ClusterRole:pod-lister", f"Group:{DEVS}", f"Group:{OPS}", name="both")
    result = _analyse(snap(POD_LISTER, both), [_seen(ALICE, LIST_PODS, both, f"Group:{OPS}")])
    assert _allows(result.after, _member(OPS), LIST_PODS)
    assert not _allows(result.after, _member(DEVS), LIST_PODS)


def test_every_group_is_kept_when_the_cited_subject_is_unknown() -> None:
    both = rb(TEAM, "ClusterRole:pod-lister", f"Group:{DEVS}", f"Group:{OPS}", name="both")
    result = _analyse(snap(POD_LISTER, both), [_seen(ALICE, LIST_PODS, both)])
    assert _allows(result.after, _member(OPS), LIST_PODS)
    assert _allows(result.after, _member(DEVS), LIST_PODS)


def test_logged_groups_keep_attribution_by_evaluation() -> None:
    """With the group in the log, evaluation matches it: the reason picks among grants."""
    member = _member(DEVS)
    result = _analyse(_s8(), [_seen(member, LIST_PODS, DEVS_PODS, f"Group:{DEVS}")])
    (devs,) = [f for f in result.findings.bindings if f.binding.name == "devs-pods"]
    (use,) = devs.uses
    assert use.by_reason and use.subject == subject(f"Group:{DEVS}")


@pytest.mark.parametrize("cited", [True, False], ids=["subject-cited", "subject-unknown"])
def test_a_binding_evaluation_finds_is_preferred(cited: bool) -> None:
    """The replay proof can check a grant evaluation finds, not one only the reason shows."""
    alice_pods = rb(TEAM, "ClusterRole:pod-lister", f"User:{ALICE.user}", name="alice-pods")
    seen = _seen(ALICE, LIST_PODS, DEVS_PODS, f"Group:{DEVS}" if cited else None)
    result = _analyse(_s8(alice_pods), [seen])
    assert _action(result, "alice-pods") == "tighten"
    assert _action(result, "devs-pods") == "remove"
    assert _allows(result.after, ALICE, LIST_PODS)


def test_cluster_role_binding_named_by_the_reason_is_kept() -> None:
    crb = Binding(
        BindingKind.CLUSTER_ROLE_BINDING,
        "devs-pods-everywhere",
        "",
        DEVS_PODS.role_ref,
        (Subject("Group", DEVS, "", "rbac.authorization.k8s.io"),),
    )
    result = _analyse(snap(POD_LISTER, crb), [_seen(ALICE, LIST_PODS, crb, f"Group:{DEVS}")])
    assert _action(result, "devs-pods-everywhere") == "tighten"
    assert _allows(result.after, _member(DEVS), LIST_PODS)
    assert not _allows(result.after, _member(DEVS), req("list pods team-b"))


# The replay proof and the replay: an allow is replayed with the group its reason names.

WITHOUT_DEVS = snap(POD_LISTER, BOB_PODS)
"""A deliberately broken plan: the devs group's binding is gone."""


def test_proof_replays_the_allow_with_the_cited_group() -> None:
    seen = _seen(ALICE, LIST_PODS, DEVS_PODS, f"Group:{DEVS}")
    assert proof.prove(_s8(), _s8(), [seen], ()).sound
    result = proof.prove(_s8(), WITHOUT_DEVS, [seen], ())
    (broken,) = result.broken
    assert broken.identity == _member(DEVS)
    assert (broken.description, broken.before, broken.after) == (LIST_PODS.display(), True, False)


@pytest.mark.parametrize(
    "seen",
    [
        _seen(ALICE, LIST_PODS, DEVS_PODS, f"Group:{OPS}"),
        _seen(ALICE, LIST_PODS, DEVS_PODS),
        _seen(ALICE, LIST_PODS, rb(TEAM, "ClusterRole:pod-lister", f"Group:{DEVS}", name="gone"),
              f"Group:{DEVS}"),
    ],
    ids=["group-not-in-binding", "subject-unknown", "missing-binding"],
)  # fmt: skip
def test_proof_adds_no_group_the_reason_does_not_establish(seen: Observation) -> None:
    """Without that evidence alice is replayed as logged: denied before and after.

    Both groups may list pods before and neither after, so a group added would show.
    """
    ops = rb(TEAM, "ClusterRole:pod-lister", f"Group:{OPS}", name="ops-pods")
    assert proof.prove(_s8(ops), WITHOUT_DEVS, [seen], ()).broken == ()


def test_proof_keeps_a_logged_group() -> None:
    seen = _seen(_member(DEVS), LIST_PODS, DEVS_PODS, f"Group:{DEVS}")
    (broken,) = proof.prove(_s8(), WITHOUT_DEVS, [seen], ()).broken
    assert broken.identity == _member(DEVS)


def _cited_entry(binding: Binding, cited: str, count: int = 2) -> replay.CitedEntry:
    """alice's logged allow of LIST_PODS with the parsed reason naming ``binding``."""
    ref = ReasonRef(binding.key, POD_LISTER.key, subject(cited))
    return (ALICE, LIST_PODS, Decision.ALLOW, count, ref)


def test_replay_evaluates_a_logged_allow_with_the_cited_group() -> None:
    current = Authorizer(_s8())
    entry = _cited_entry(DEVS_PODS, f"Group:{DEVS}")
    assert replay.replay_report([entry], current, current).changes == ()
    result = replay.replay_report([entry], current, Authorizer(WITHOUT_DEVS))
    (change,) = result.changes
    assert change.identity == _member(DEVS) and change.count == 2
    assert (change.before, change.after, change.current) == (
        Decision.ALLOW,
        Decision.FORBID,
        Decision.ALLOW,
    )
    assert change.reason == _reason("devs-pods", f'Group "{DEVS}"')
    assert result.distinct == 1 and result.requests == 2


def test_replay_without_a_reason_uses_the_logged_groups() -> None:
    """A plain entry carries no evidence of membership: alice's allow is unexplained."""
    current = Authorizer(_s8())
    (change,) = replay.replay([(ALICE, LIST_PODS, Decision.ALLOW, 1)], current, current)
    assert change.identity == ALICE and change.current == Decision.FORBID


def test_replay_adds_no_group_to_a_logged_denial() -> None:
    """A denial names no binding; an entry claiming one is replayed with its logged groups."""
    current = Authorizer(_s8())
    ref = ReasonRef(DEVS_PODS.key, POD_LISTER.key, subject(f"Group:{DEVS}"))
    assert replay.replay([(ALICE, LIST_PODS, Decision.FORBID, 1, ref)], current, current) == []


def test_replay_needs_the_current_rbac_to_confirm_the_reason() -> None:
    entry = _cited_entry(DEVS_PODS, f"Group:{DEVS}")
    (change,) = replay.replay_report([entry], None, Authorizer(_s8())).changes
    assert change.identity == ALICE and change.after == Decision.FORBID


# End to end: a GKE Cloud Audit Logs export and a kubectl dump, through the CLI.

RBAC_YAML = """\
apiVersion: v1
kind: List
items:
- apiVersion: rbac.authorization.k8s.io/v1
  kind: ClusterRole
  metadata: {name: pod-lister}
  rules:
  - {apiGroups: [""], resources: [pods], verbs: [list, get]}
- apiVersion: rbac.authorization.k8s.io/v1
  kind: RoleBinding
  metadata: {name: devs-pods, namespace: team-a}
  roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: pod-lister}
  subjects:
  - {apiGroup: rbac.authorization.k8s.io, kind: Group, name: devs@example.com}
- apiVersion: rbac.authorization.k8s.io/v1
  kind: RoleBinding
  metadata: {name: bob-pods, namespace: team-a}
  roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: pod-lister}
  subjects:
  - {apiGroup: rbac.authorization.k8s.io, kind: User, name: bob@example.com}
"""


def _gke_entry(insert_id: str, user: str, reason: str, when: str) -> dict[str, Any]:
    """A GKE Cloud Audit Logs entry for ``user`` listing pods in team-a, allowed."""
    resource = f"core/v1/namespaces/{TEAM}/pods"
    return {
        "insertId": insert_id,
        "logName": "projects/p/logs/cloudaudit.googleapis.com%2Factivity",
        "operation": {"producer": "k8s.io"},
        "labels": {
            "authorization.k8s.io/decision": "allow",
            "authorization.k8s.io/reason": reason,
        },
        "protoPayload": {
            "@type": "type.googleapis.com/google.cloud.audit.AuditLog",
            "authenticationInfo": {"principalEmail": user},
            "authorizationInfo": [
                {"granted": True, "permission": "io.k8s.core.v1.pods.list", "resource": resource}
            ],
            "methodName": "io.k8s.core.v1.pods.list",
            "requestMetadata": {
                "callerIp": "10.0.0.1",
                "callerSuppliedUserAgent": "kubectl/v1.36.3 (linux/amd64) kubernetes/abc1234",
            },
            "resourceName": resource,
            "serviceName": "k8s.io",
            "status": {},
        },
        "resource": {
            "type": "k8s_cluster",
            "labels": {"project_id": "p", "cluster_name": "c", "location": "l"},
        },
        "timestamp": when,
    }


def _reason(binding: str, to: str) -> str:
    return f'RBAC: allowed by RoleBinding "{binding}/{TEAM}" of ClusterRole "pod-lister" to {to}'


def _write_inputs(tmp: Path) -> tuple[Path, Path]:
    """The GKE log (alice through the devs group, bob directly) and the RBAC dump."""
    entries = [
        _gke_entry(
            "a1", ALICE.user, _reason("devs-pods", f'Group "{DEVS}"'), "2026-11-01T10:00:00Z"
        ),
        _gke_entry(
            "a2", BOB.user, _reason("bob-pods", 'User "bob@example.com"'), "2026-11-01T10:01:00Z"
        ),
    ]
    log = tmp / "gke.jsonl"
    log.write_text("".join(json.dumps(e) + "\n" for e in entries))
    rbac = tmp / "rbac.yaml"
    rbac.write_text(RBAC_YAML)
    return log, rbac


def _cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rbac_advisor", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _verify(log: Path, rbac: Path, out: Path | None) -> subprocess.CompletedProcess[str]:
    plan = () if out is None else ("--apply", out / "roles.yaml", "--prune", out / "prune.yaml")
    return _cli("verify", "--audit", log, "--rbac", rbac, "--json", *plan)


@pytest.fixture(scope="module")
def analysed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """Inputs and the output directory of one ``analyze`` run over them."""
    tmp = tmp_path_factory.mktemp("groupless")
    log, rbac = _write_inputs(tmp)
    out = tmp / "out"
    proc = _cli("analyze", "--audit", log, "--rbac", rbac, "--out", out)
    assert proc.returncode == 0, proc.stderr
    return log, rbac, out


def test_cli_keeps_the_group_grant(analysed: tuple[Path, Path, Path]) -> None:
    log, rbac, out = analysed
    current = load_rbac([rbac])
    after = replay.intended(
        current, load_rbac([out / "roles.yaml"]), load_rbac([out / "prune.yaml"])
    )
    assert _allows(after, _member(DEVS), LIST_PODS)
    assert _allows(after, BOB, LIST_PODS)
    assert not _allows(after, _member(DEVS), req(f"get pods {TEAM} p1"))
    findings = json.loads((out / "findings.json").read_text())
    assert findings["unexplained"] == []
    (devs,) = [b for b in findings["bindings"] if b["name"] == "devs-pods"]
    assert [u["attributedBy"] for u in devs["uses"]] == ["reason"]


def test_cli_verify_sees_no_change_from_the_recommendation(
    analysed: tuple[Path, Path, Path],
) -> None:
    """What verify reports for the output is what it reports for the unchanged RBAC."""
    log, rbac, out = analysed
    with_plan, without = _verify(log, rbac, out), _verify(log, rbac, None)
    assert with_plan.returncode == without.returncode, with_plan.stderr
    assert json.loads(with_plan.stdout)["changes"] == json.loads(without.stdout)["changes"]


@pytest.mark.parametrize("planned", [True, False], ids=["recommendation", "unchanged-rbac"])
def test_cli_verify_reports_no_change(analysed: tuple[Path, Path, Path], planned: bool) -> None:
    log, rbac, out = analysed
    proc = _verify(log, rbac, out if planned else None)
    assert proc.returncode == 0, proc.stdout
    assert json.loads(proc.stdout)["changed"] == 0


def _drop_document(src: Path, dst: Path, kind: str, name: str) -> None:
    """Copy a generated manifest stream without the object of ``kind`` named ``name``."""
    docs = src.read_text().split("\n---\n")
    kept = [d for d in docs if not (f"kind: {kind}\n" in d and f"  name: {name}\n" in d)]
    assert len(kept) == len(docs) - 1
    dst.write_text("\n---\n".join(kept))


def test_cli_verify_reports_a_dropped_group_grant(
    analysed: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    """The recommendation edited to lose the devs group's binding: alice's allow is lost."""
    log, rbac, out = analysed
    edited = tmp_path / "edited"
    edited.mkdir()
    _drop_document(
        out / "roles.yaml", edited / "roles.yaml", "RoleBinding", "rbac-advisor:devs-pods"
    )
    (edited / "prune.yaml").write_text((out / "prune.yaml").read_text())
    proc = _verify(log, rbac, edited)
    assert proc.returncode == 5, proc.stderr
    report = json.loads(proc.stdout)
    assert report["changed"] == 1
    (change,) = report["changes"]
    assert (change["user"], change["before"], change["after"]) == (ALICE.user, "allow", "forbid")
    assert change["request"] == LIST_PODS.display()
    assert change["groups"] == sorted([DEVS, "system:authenticated"])
    assert change["currentRbac"] == "allow"

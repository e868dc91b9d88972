"""Replay: the intended state (current + apply - prune) and which observed outcomes change."""

from __future__ import annotations

import json

from rbac_builders import cr, crb, rb, req, role, rule, snap, who

from rbac_advisor.authorizer import Authorizer
from rbac_advisor.events import Decision
from rbac_advisor.rbac import LabelRequirement, LabelSelector, Request, Role, RoleKind, Snapshot
from rbac_advisor.replay import (
    EVALUATED,
    LOGGED,
    Change,
    intended,
    replay,
    replay_report,
    result_to_json,
    result_to_text,
)

ALLOW, FORBID, UNKNOWN = Decision.ALLOW, Decision.FORBID, Decision.UNKNOWN
WAS_WRITE = (
    'RBAC: allowed by ClusterRoleBinding "alice-write" of ClusterRole "write" to User "alice"'
)
READ = cr("read", rule("get,list", "", "pods"))
WRITE = cr("write", rule("get,list,create,delete", "", "pods"))
BASE = snap(
    READ,
    WRITE,
    crb("write", "User:alice", name="alice-write"),
    rb("ns", "ClusterRole:read", "User:bob"),
)


def test_intended_applies_then_prunes_by_key() -> None:
    new_binding = crb("read", "User:alice", name="alice-read")
    changed_role = cr("read", rule("get", "", "pods"))
    apply = snap(changed_role, new_binding)
    prune = snap(crb("write", "User:whoever", name="alice-write"))  # content does not matter
    out = intended(BASE, apply, prune)
    assert {b.name for b in out.bindings} == {"alice-read", "read-binding"}
    assert {r.name: r.rules for r in out.roles}["read"] == (rule("get", "", "pods"),)
    assert out.warnings == ()
    # Applying and pruning the same object leaves it deleted (delete runs second).
    assert new_binding not in intended(BASE, apply, snap(new_binding)).bindings


def test_intended_warns_about_what_kubectl_refuses() -> None:
    moved = crb("read", "User:alice", name="alice-write")  # same name, other roleRef
    out = intended(BASE, snap(moved), snap(crb("x", name="never-existed")))
    assert len(out.warnings) == 2
    assert (
        "roleRef is immutable" in out.warnings[0]
        and "ClusterRoleBinding/alice-write" in out.warnings[0]
    )
    assert "ClusterRoleBinding/never-existed" in out.warnings[1]


def test_intended_reaggregates_when_an_applied_role_joins_an_aggregate() -> None:
    view = Role(
        RoleKind.CLUSTER_ROLE,
        "view",
        rules=READ.rules,
        aggregation=(LabelSelector((LabelRequirement("to-view", "In", ("true",)),)),),
    )
    base = snap(view, cr("read", *READ.rules, labels={"to-view": "true"}))
    extra = cr("crd-view", rule("get", "example.com", "widgets"), labels={"to-view": "true"})
    out = intended(base, snap(extra), Snapshot())
    # The controller visits selected roles by name: crd-view before read.
    assert {r.name: r.rules for r in out.roles}["view"] == (*extra.rules, *READ.rules)


def entries() -> list[tuple]:
    return [
        (who("alice"), req("delete pods ns"), ALLOW, 3),
        (who("alice"), req("delete pods ns"), ALLOW, 2),  # same request, another user agent
        (who("alice"), req("get pods ns"), ALLOW, 10),
        (who("bob"), req("get pods ns"), ALLOW, 4),
        (who("carol"), req("get pods ns"), FORBID, 1),
        (who("alice"), req("create pods ns"), UNKNOWN, 7),
        (who("root", "system:masters"), req("delete nodes -"), ALLOW, 9),
        (who("system:node:n1", "system:nodes"), req("get secrets ns s"), ALLOW, 5),
    ]


def test_replay_compares_logged_decisions_and_evaluates_unknown_ones() -> None:
    after = intended(
        BASE,
        snap(crb("read", "User:alice", name="alice-read"), crb("read", "User:carol", name="carol")),
        snap(crb("write", name="alice-write")),
    )
    result = replay_report(entries(), Authorizer(BASE), Authorizer(after))
    assert result.changes == (
        Change(
            who("alice"),
            req("create pods ns"),
            7,
            ALLOW,
            FORBID,
            EVALUATED,
            WAS_WRITE,
            ALLOW,
        ),
        Change(
            who("alice"),
            req("delete pods ns"),
            5,
            ALLOW,
            FORBID,
            LOGGED,
            WAS_WRITE,
            ALLOW,
        ),
        Change(
            who("carol"),
            req("get pods ns"),
            1,
            FORBID,
            ALLOW,
            LOGGED,
            'RBAC: allowed by ClusterRoleBinding "carol" of ClusterRole "read" to User "carol"',
            FORBID,
        ),
    )
    assert result.requests == 41
    assert result.entries == 8
    assert result.distinct == 7
    assert result.evaluated == 7
    assert result.privileged == 9
    assert result.node_authorized == 5  # RBAC never allowed it; the Node authorizer did
    assert result.undetermined == 0
    assert replay(entries(), Authorizer(BASE), Authorizer(after)) == list(result.changes)


def test_logged_decision_wins_over_current_rbac() -> None:
    # bob is logged as denied although current RBAC allows him: the log is the truth.
    authz = Authorizer(BASE)
    changes = replay([(who("bob"), req("get pods ns"), FORBID, 1)], authz, authz)
    assert [(c.before, c.after) for c in changes] == [(FORBID, ALLOW)]


def test_without_a_before_authorizer_unknown_decisions_are_not_compared() -> None:
    result = replay_report(
        [(who("alice"), req("create pods ns"), UNKNOWN, 7)], None, Authorizer(Snapshot())
    )
    assert result.changes == () and result.undetermined == 7


def test_nothing_changes_when_nothing_is_applied() -> None:
    authz = Authorizer(BASE)
    logged = [
        (i, a, ALLOW if authz.allows(r) else FORBID, 1)
        for i in [who("alice"), who("bob"), who("eve")]
        for a in [
            req("get pods ns"),
            req("delete pods ns"),
            req("get pods other"),
            req("get /healthz"),
        ]
        for r in [Request(i, a)]
    ]
    assert replay(logged, authz, Authorizer(intended(BASE, Snapshot(), Snapshot()))) == []


def test_json_and_text_rendering() -> None:
    after = intended(BASE, Snapshot(), snap(crb("write", name="alice-write")))
    result = replay_report(entries(), Authorizer(BASE), Authorizer(after))
    doc = json.loads(json.dumps(result_to_json(result)))
    # alice loses create (evaluated, 7), delete (5) and get (10): write was her only grant.
    assert doc["requests"] == 41 and doc["changed"] == 3 and doc["changedRequests"] == 22
    first = doc["changes"][0]
    assert first["user"] == "alice" and first["before"] == "allow" and first["after"] == "forbid"
    assert first["basis"] == "evaluated"
    assert first["access"] == {
        "verb": "create",
        "apiGroup": "",
        "resource": "pods",
        "subresource": "",
        "namespace": "ns",
        "name": "",
    }
    lines = result_to_text(result).splitlines()
    # Most frequent first, each with the grant that used to allow it.
    assert lines[0] == "allow -> forbid  alice  get pods in ns  x10"
    assert lines[1] == (
        '    was RBAC: allowed by ClusterRoleBinding "alice-write" of ClusterRole "write" '
        'to User "alice"'
    )
    assert lines[2].endswith("x7  (no logged decision; compared with current RBAC)")
    assert lines[-2].startswith("3 of 7 distinct requests would change (22 observed requests")
    assert "9 from system:masters" in lines[-1] and "5 node requests" in lines[-1]


def test_replay_handles_namespaced_roles_and_urls() -> None:
    base = snap(
        role("ns", "r", rule("get", "", "configmaps")),
        rb("ns", "Role:r", "ServiceAccount:app"),
        cr("disc", rule("get", urls="/version")),
        crb("disc", "Group:system:authenticated"),
    )
    sa = who("system:serviceaccount:ns:app", "system:authenticated")
    logged = [(sa, req("get configmaps ns c"), ALLOW, 2), (sa, req("get /version"), ALLOW, 1)]
    after = intended(base, Snapshot(), snap(rb("ns", "Role:r", name="r-binding")))
    (change,) = replay(logged, Authorizer(base), Authorizer(after))
    assert change.access == req("get configmaps ns c") and change.count == 2
    assert change.reason.endswith('to ServiceAccount "app/ns"')


def test_logged_allows_the_current_rbac_does_not_explain_are_flagged() -> None:
    # dave was allowed by something the snapshot does not show (another authorizer, or a
    # binding since deleted): the change is real for the intended state, and says so.
    authz = Authorizer(BASE)
    result = replay_report([(who("dave"), req("get pods ns"), ALLOW, 3)], authz, authz)
    (change,) = result.changes
    assert (change.before, change.after, change.current, change.reason) == (
        ALLOW,
        FORBID,
        FORBID,
        "",
    )
    assert result_to_text(result).splitlines()[0] == (
        "allow -> forbid  dave  get pods in ns  x3  (the current RBAC does not allow it either)"
    )
    assert result_to_json(result)["changes"][0]["currentRbac"] == "forbid"

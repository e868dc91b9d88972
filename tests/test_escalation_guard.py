"""Writers of RBAC objects keep what the apiserver's escalation check needs.

Creating or updating a Role, ClusterRole or binding without ``escalate``/``bind`` requires
the writer to hold every permission granted, and a binding's role to exist. The audit log
shows neither, so the writer's bindings are left as they are and no role is deleted.
"""

from __future__ import annotations

import dataclasses

import pytest
from rbac_builders import cr, rb, req, role, rule, snap, who

from rbac_advisor import proof
from rbac_advisor.analysis import AnalysisOptions, Result, run
from rbac_advisor.diff import Observation
from rbac_advisor.events import Decision
from rbac_advisor.rbac import Access, Binding, Identity, Role, Snapshot

RBAC = "rbac.authorization.k8s.io"
U1 = who("u1", "system:authenticated")
U3 = who("u3", "system:authenticated")

DELEGATOR = cr(
    "delegator",
    rule("create", RBAC, "rolebindings"),
    rule("get,list,watch", "", "pods"),
)
POD_READER = cr("pod-reader", rule("get,list", "", "pods"))
ROLE_MAKER = role(
    "team-a",
    "role-maker",
    rule("create", RBAC, "roles"),
    rule("get,list", "", "configmaps"),
)
U1_DELEGATOR = rb("team-a", "ClusterRole:delegator", "User:u1", name="u1-delegator")
U2_READS = rb("team-a", "ClusterRole:pod-reader", "User:u2", name="u2-reads")
U3_ROLE_MAKER = rb("team-a", "Role:role-maker", "User:u3", name="u3-role-maker")
SNAPSHOT = snap(DELEGATOR, POD_READER, ROLE_MAKER, U1_DELEGATOR, U2_READS, U3_ROLE_MAKER)
GUARDED = ("u1-delegator", "u3-role-maker")


def _observed(
    identity: Identity, *accesses: Access, decision: Decision = Decision.ALLOW
) -> list[Observation]:
    """One request per access, seen once."""
    return [Observation(identity, a, decision, 1, 0.0, 1.0, frozenset({0})) for a in accesses]


def _analyse(snapshot: Snapshot, observations: list[Observation]) -> Result:
    result = run(snapshot, observations, AnalysisOptions(window="w"))
    assert result.proof.sound
    return result


def _change(result: Result, name: str) -> tuple[str, str, tuple[Role | Binding, ...]]:
    """(action, summary, creates + deletes) of the named binding."""
    (c,) = [c for c in result.plan.changes if c.binding.name == name]
    return c.action, c.summary, c.creates + c.deletes


def _names(objects: tuple[Role | Binding, ...]) -> set[str]:
    return {o.name for o in objects}


def _writes() -> list[Observation]:
    return _observed(U1, req(f"create rolebindings.{RBAC} team-a")) + _observed(
        U3, req(f"create roles.{RBAC} team-a")
    )


def test_bindings_of_rbac_writers_are_left_as_they_are() -> None:
    result = _analyse(SNAPSHOT, _writes())
    for name in GUARDED:
        action, summary, touched = _change(result, name)
        assert action == "report-only"
        assert "escalation check" in summary and "review by hand" in summary
        assert touched == ()
    touched_names = _names(result.plan.apply) | _names(result.plan.prune)
    assert not touched_names & {*GUARDED, "delegator", "role-maker"}
    assert not any("u1-delegator" in n or "u3-role-maker" in n for n in touched_names)


def test_no_role_is_pruned_while_rbac_objects_are_written() -> None:
    result = _analyse(SNAPSHOT, _writes())
    assert [(o.kind, o.name) for o in result.plan.prune] == [("RoleBinding", "u2-reads")]
    action, summary, _ = _change(result, "u2-reads")
    assert action == "remove"
    assert "keep ClusterRole/pod-reader" in summary
    assert any("no Role or ClusterRole is deleted" in n for n in result.plan.notes)
    assert POD_READER in result.after.roles


def test_without_rbac_writes_narrowing_and_role_pruning_still_happen() -> None:
    observations = _observed(U1, req("get pods team-a p1")) + _observed(
        U3, req("get configmaps team-a c1")
    )
    result = _analyse(SNAPSHOT, observations)
    action, _, touched = _change(result, "u1-delegator")
    assert action == "tighten" and U1_DELEGATOR in touched
    action, _, touched = _change(result, "u3-role-maker")
    assert action == "tighten"
    (narrowed,) = [o for o in touched if isinstance(o, Role)]
    assert narrowed.name == "role-maker" and narrowed.rules == (
        rule("get", "", "configmaps", "c1"),
    )
    assert POD_READER in result.plan.prune and U2_READS in result.plan.prune
    assert result.plan.notes == ()


def test_idle_binding_of_a_writer_is_kept() -> None:
    extra = rb("team-b", "ClusterRole:pod-reader", "User:u1", name="u1-reads-b")
    result = _analyse(snap(*SNAPSHOT.roles, *SNAPSHOT.bindings, extra), _writes())
    action, _, touched = _change(result, "u1-reads-b")
    assert action == "report-only" and touched == ()


def test_group_subject_of_a_writer_is_guarded() -> None:
    writer = who("dana", "platform", "system:authenticated")
    snapshot = snap(DELEGATOR, rb("team-a", "ClusterRole:delegator", "Group:platform", name="g"))
    result = _analyse(snapshot, _observed(writer, req(f"update rolebindings.{RBAC} team-a rb1")))
    action, summary, _ = _change(result, "g")
    assert action == "report-only" and "escalation check" in summary


@pytest.mark.parametrize(
    ("identity", "decision"),
    [
        (U1, Decision.FORBID),
        (who("root", "system:masters", "system:authenticated"), Decision.ALLOW),
    ],
)
def test_refused_or_privileged_writes_do_not_guard(identity: Identity, decision: Decision) -> None:
    observations = _observed(identity, req(f"create rolebindings.{RBAC} team-a"), decision=decision)
    observations += _observed(U1, req("get pods team-a p1"))
    result = _analyse(SNAPSHOT, observations)
    assert _change(result, "u1-delegator")[0] == "tighten"
    assert POD_READER in result.plan.prune


@pytest.mark.parametrize(
    ("access", "checked"),
    [
        (Access("create", RBAC, "rolebindings", namespace="ns"), True),
        (Access("patch", RBAC, "clusterroles", name="x"), True),
        (Access("update", RBAC, "roles", namespace="ns", name="x"), True),
        (Access("create", RBAC, "clusterrolebindings"), True),
        (Access("delete", RBAC, "rolebindings", namespace="ns", name="x"), False),
        (Access("get", RBAC, "roles", namespace="ns", name="x"), False),
        (Access("create", "example.com", "rolebindings", namespace="ns"), False),
        (Access("create", "", "pods", namespace="ns"), False),
    ],
)
def test_which_writes_the_escalation_check_guards(access: Access, checked: bool) -> None:
    assert proof.escalation_checked(access) is checked


def _prove(after: Snapshot, observations: list[Observation]) -> proof.Proof:
    return proof.prove(SNAPSHOT, after, observations, ())


def test_proof_refuses_narrowing_a_writers_role() -> None:
    narrowed = dataclasses.replace(DELEGATOR, rules=(rule("create", RBAC, "rolebindings"),))
    after = proof.intended(SNAPSHOT, [narrowed], [])
    result = _prove(after, _writes())
    assert not result.sound
    (broken,) = result.broken
    assert broken.identity == U1 and "escalation check" in broken.description
    assert "pods" in broken.description


def test_proof_refuses_deleting_a_role_a_binding_write_may_reference() -> None:
    after = proof.intended(SNAPSHOT, [], [U2_READS, POD_READER])
    result = _prove(after, _writes())
    (broken,) = result.broken
    assert broken.identity == U1
    assert "ClusterRole/pod-reader" in broken.description and "deleted" in broken.description


def test_proof_accepts_role_deletion_when_only_roles_are_written() -> None:
    after = proof.intended(SNAPSHOT, [], [U2_READS, POD_READER])
    result = _prove(after, _observed(U3, req(f"create roles.{RBAC} team-a")))
    assert result.sound


def test_proof_refuses_an_existing_role_that_grows() -> None:
    grown = dataclasses.replace(POD_READER, rules=(rule("get,list", "", "pods,secrets"),))
    result = _prove(proof.intended(SNAPSHOT, [grown], []), [])
    (escalation,) = result.escalations
    assert escalation.binding == "ClusterRole/pod-reader"
    assert escalation.rules == (rule("get", "", "secrets"), rule("list", "", "secrets"))


def test_the_report_shows_why_a_writers_binding_is_left_as_it_is() -> None:
    from rbac_advisor import usage
    from rbac_advisor.render.report_model import BindingAction
    from rbac_advisor.render.review_view import build_view

    result = _analyse(SNAPSHOT, _writes())
    view = build_view(result, usage.empty(), {}, "rbac-advisor analyze")
    (guarded,) = [b for b in view.bindings if b.name == "u1-delegator"]
    assert guarded.action is BindingAction.KEEP  # not shown as a built-in binding
    assert any("escalation check" in n for n in guarded.notes)
    assert any(
        w.kind == "plan" and "no Role or ClusterRole is deleted" in w.message for w in view.warnings
    )

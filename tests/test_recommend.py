"""Diff, recommendation and proof on small hand-made clusters."""

from __future__ import annotations

from rbac_advisor.analysis import AnalysisOptions, run
from rbac_advisor.authorizer import Authorizer, covers
from rbac_advisor.diff import Observation
from rbac_advisor.events import Decision
from rbac_advisor.rbac import (
    Access,
    Binding,
    BindingKind,
    Identity,
    PolicyRule,
    Request,
    Role,
    RoleKind,
    RoleRef,
    Snapshot,
    Subject,
)

DAY = 86400.0


def rule(verbs: str, groups: str, resources: str, names: str = "") -> PolicyRule:
    return PolicyRule.of(
        verbs.split(","), groups.split(","), resources.split(","), names.split(",") if names else ()
    )


def url_rule(verbs: str, urls: str) -> PolicyRule:
    return PolicyRule.of(verbs=verbs.split(","), non_resource_urls=urls.split(","))


def subj(spec: str) -> Subject:
    kind, _, rest = spec.partition(":")
    if kind == "ServiceAccount":
        ns, _, name = rest.partition("/")
        return Subject("ServiceAccount", name, ns)
    return Subject(kind, rest, "", "rbac.authorization.k8s.io")


def crole(name: str, *rules: PolicyRule, labels: tuple[tuple[str, str], ...] = ()) -> Role:
    return Role(RoleKind.CLUSTER_ROLE, name, "", rules, labels)


def nsrole(ns: str, name: str, *rules: PolicyRule) -> Role:
    return Role(RoleKind.ROLE, name, ns, rules)


def crb(name: str, role: str, *subjects: str) -> Binding:
    return Binding(
        BindingKind.CLUSTER_ROLE_BINDING,
        name,
        "",
        RoleRef(RoleKind.CLUSTER_ROLE, role),
        tuple(subj(s) for s in subjects),
    )


def rb(
    ns: str, name: str, role: str, *subjects: str, kind: RoleKind = RoleKind.CLUSTER_ROLE
) -> Binding:
    return Binding(
        BindingKind.ROLE_BINDING, name, ns, RoleRef(kind, role), tuple(subj(s) for s in subjects)
    )


def obs(
    user: str,
    verb: str,
    resource: str,
    ns: str = "",
    name: str = "",
    *,
    group: str = "",
    groups: tuple[str, ...] = (),
    decision: Decision = Decision.ALLOW,
    count: int = 1,
) -> Observation:
    res, _, sub = resource.partition("/")
    if resource.startswith("/"):
        access = Access(verb, path=resource, resource_request=False)
    else:
        access = Access(verb, group, res, sub, ns, name)
    return Observation(
        Identity(user, tuple(sorted(groups))),
        access,
        decision,
        count,
        0.0,
        5 * DAY,
        frozenset({0, 5}),
    )


SA = "system:serviceaccount:ci:deployer"
SA_GROUPS = ("system:authenticated", "system:serviceaccounts", "system:serviceaccounts:ci")

CLUSTER_ADMIN = crole("cluster-admin", rule("*", "*", "*"), url_rule("*", "*"))
EDIT = crole(
    "edit",
    rule("get,list,watch,create,update,patch,delete", "", "pods,configmaps,secrets,services"),
    rule("get,list,watch,create,update,patch,delete", "apps", "deployments,statefulsets"),
    rule("create", "", "pods/exec"),
)


def cluster() -> Snapshot:
    return Snapshot(
        roles=(
            CLUSTER_ADMIN,
            EDIT,
            crole("idle-role", rule("get", "", "nodes")),
            nsrole("team-b", "wild", rule("*", "*", "*")),
        ),
        bindings=(
            crb("ci-deployer", "cluster-admin", "ServiceAccount:ci/deployer"),
            rb("team-a", "devs-edit", "edit", "Group:team-a-devs", "User:carol"),
            crb("idle", "idle-role", "User:nobody"),
            rb("team-b", "wild", "wild", "User:bob", kind=RoleKind.ROLE),
        ),
    )


def traffic() -> list[Observation]:
    return [
        obs(SA, "get", "deployments", "team-a", "web", group="apps", groups=SA_GROUPS, count=10),
        obs(SA, "patch", "deployments", "team-a", "web", group="apps", groups=SA_GROUPS, count=3),
        obs(SA, "get", "deployments", "team-b", "web", group="apps", groups=SA_GROUPS),
        obs(SA, "patch", "deployments", "team-b", "web", group="apps", groups=SA_GROUPS),
        obs(SA, "list", "namespaces", groups=SA_GROUPS),
        obs("alice", "get", "pods", "team-a", "p1", groups=("system:authenticated", "team-a-devs")),
        obs("alice", "list", "pods", "team-a", groups=("system:authenticated", "team-a-devs")),
        obs(
            "alice",
            "get",
            "pods/log",
            "team-a",
            "p1",
            groups=("system:authenticated", "team-a-devs"),
            decision=Decision.FORBID,
        ),
        obs(
            "alice",
            "delete",
            "secrets",
            "team-a",
            "s",
            groups=("team-a-devs",),
            decision=Decision.FORBID,
        ),
        obs("bob", "get", "configmaps", "team-b", "cfg"),
        obs("bob", "create", "configmaps", "team-b", ""),
    ]


def result() -> object:
    return run(cluster(), traffic(), AnalysisOptions(window="w"))


def test_plan_is_sound_and_tight() -> None:
    res = run(cluster(), traffic(), AnalysisOptions(window="w"))
    assert res.proof.sound
    assert res.proof.checked == len(traffic())
    after = Authorizer(res.after)
    # every observed allowed request still allowed, every denied one still denied
    for o in traffic():
        req = Request(o.identity, o.access)
        if o.decision == Decision.ALLOW:
            assert after.allows(req)
        else:
            assert not after.allows(req)
    sa = Identity(SA, SA_GROUPS)
    # cluster-admin leftovers are gone
    assert not after.allows(Request(sa, Access("get", "", "secrets", "", "team-a", "x")))
    assert not after.allows(
        Request(sa, Access("delete", "apps", "deployments", "", "team-c", "web"))
    )
    assert after.allows(Request(sa, Access("list", "", "namespaces")))
    # names kept where every request named the object
    assert not after.allows(
        Request(sa, Access("get", "apps", "deployments", "", "team-a", "other"))
    )
    # idle binding removed
    assert all(b.name != "idle" for b in res.after.bindings)
    # alice: pods/log was never granted, stays denied; get pods allowed; exec gone
    alice = Identity("alice", ("system:authenticated", "team-a-devs"))
    assert not after.allows(Request(alice, Access("create", "", "pods", "exec", "team-a", "p1")))
    assert after.allows(Request(alice, Access("get", "", "pods", "", "team-a", "p1")))


def test_ci_deployer_moves_to_namespaces() -> None:
    res = run(cluster(), traffic(), AnalysisOptions())
    kinds = sorted((o.kind, o.namespace) for o in res.plan.apply if isinstance(o, Binding))
    assert ("RoleBinding", "team-a") in kinds and ("RoleBinding", "team-b") in kinds
    assert ("ClusterRoleBinding", "") in kinds  # list namespaces is cluster-wide
    pruned = {(o.kind, o.name) for o in res.plan.prune}
    assert ("ClusterRoleBinding", "ci-deployer") in pruned
    assert ("ClusterRole", "cluster-admin") not in pruned  # default roles are never pruned
    assert ("ClusterRole", "idle-role") in pruned  # only the idle binding used it


def test_never_grants_more_than_before() -> None:
    res = run(cluster(), traffic(), AnalysisOptions())
    before = Authorizer(cluster())
    for o in res.plan.apply:
        if isinstance(o, Binding):
            role = res.after.role(o.role_key)
            assert role is not None
            for s in o.subjects:
                ident = Identity(s.name) if s.kind == "User" else Identity("x", (s.name,))
                if s.kind == "ServiceAccount":
                    ident = Identity(f"system:serviceaccount:{s.namespace}:{s.name}")
                scope = o.namespace
                held = [r for _, rl, _ in before.rules_for(ident, scope) for r in rl.rules]
                assert covers(held, role.rules)[0]


def test_output_independent_of_input_order() -> None:
    a = run(cluster(), traffic(), AnalysisOptions())
    b = run(cluster(), list(reversed(traffic())), AnalysisOptions())
    assert a.plan == b.plan


def test_shared_role_is_not_edited_in_place_and_names_do_not_collide() -> None:
    shared = nsrole("team-a", "shared", rule("get,list,delete", "", "pods,configmaps"))
    taken = nsrole("team-a", "rbac-advisor:one", rule("get", "", "secrets"))
    snap = Snapshot(
        roles=(shared, taken),
        bindings=(
            rb("team-a", "one", "shared", "User:ann", kind=RoleKind.ROLE),
            rb("team-a", "two", "shared", "User:ben", kind=RoleKind.ROLE),
        ),
    )
    res = run(
        snap,
        [obs("ann", "get", "pods", "team-a", "p"), obs("ben", "list", "configmaps", "team-a")],
        AnalysisOptions(),
    )
    applied = {(o.kind, o.namespace, o.name) for o in res.plan.apply}
    assert ("Role", "team-a", "shared") not in applied  # shared: never edited in place
    assert ("Role", "team-a", "rbac-advisor:one") not in applied  # an existing object's name
    assert ("Role", "team-a", "rbac-advisor:one-2") in applied
    assert ("Role", "team-a", "rbac-advisor:two") in applied
    assert (
        shared not in res.plan.prune
    )  # shared roles are left as they are (they grant nothing once unbound)
    after = Authorizer(res.after)
    ann, ben = Identity("ann"), Identity("ben")
    assert after.allows(Request(ann, Access("get", "", "pods", "", "team-a", "p")))
    assert not after.allows(Request(ann, Access("list", "", "configmaps", "", "team-a")))
    assert after.allows(Request(ben, Access("list", "", "configmaps", "", "team-a")))
    assert not after.allows(Request(ben, Access("delete", "", "pods", "", "team-a", "p")))

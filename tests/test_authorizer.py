"""The RBAC authorizer: tables ported from rbac_test.go and the RBAC docs, and laws."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rbac_builders import cr, crb, rb, req, role, rule, snap, who

from rbac_advisor.authorizer import Authorizer, applies_to, breakdown, rule_allows
from rbac_advisor.rbac import (
    Access,
    Binding,
    BindingKind,
    Identity,
    PolicyRule,
    Request,
    RoleKind,
    RoleRef,
    Snapshot,
    Subject,
)

ADMIN = cr("admin", rule("*", "*", "*"))
READ_PODS = cr("read-pods", rule("get,list,watch", "", "pods"))

# (name, objects, identity, allowed requests, denied requests)
TABLE = [
    (
        "RoleBinding to ClusterRole is limited to its namespace",
        [ADMIN, rb("ns1", "ClusterRole:admin", "User:admin", "Group:admins")],
        who("admin"),
        ["get pods ns1", "delete secrets ns1 x", "list deployments.apps ns1"],
        ["get pods ns2", "get nodes -", "get /healthz", "list pods -"],
    ),
    (
        "group membership",
        [ADMIN, rb("ns1", "ClusterRole:admin", "Group:admins")],
        who("joe", "group1", "admins"),
        ["watch foobar ns1"],
        ["watch foobar ns2"],
    ),
    (
        "ClusterRoleBinding grants every namespace and cluster scope",
        [READ_PODS, crb("read-pods", "User:alice")],
        who("alice"),
        ["get pods ns1", "list pods -", "watch pods kube-system"],
        ["get pods/log ns1", "create pods ns1", "get secrets ns1", "get pods.apps ns1"],
    ),
    (
        "pods does not cover pods/status; */scale covers every scale",
        [
            cr("r", rule("get", "*", "pods/status"), rule("get", "*", "*/scale")),
            crb("r", "User:u"),
        ],
        who("u"),
        ["get pods/status ns", "get deployments.apps/scale ns", "get anything/scale -"],
        ["get pods ns", "get pods/log ns", "update pods/status ns"],
    ),
    (
        "pods/* is not a wildcard in RBAC",
        [cr("r", rule("get", "", "pods/*")), crb("r", "User:u")],
        who("u"),
        [],
        ["get pods/log ns", "get pods/status ns", "get pods ns"],
    ),
    (
        "resource * covers subresources",
        [cr("r", rule("get", "", "*")), crb("r", "User:u")],
        who("u"),
        ["get pods/log ns", "get pods ns", "get nodes/proxy -"],
        ["get deployments.apps ns"],
    ),
    (
        "resourceNames need a named request",
        [cr("r", rule("get,list,update", "", "configmaps", names="cfg")), crb("r", "User:u")],
        who("u"),
        ["get configmaps ns cfg", "list configmaps ns cfg", "update configmaps ns cfg"],
        ["get configmaps ns other", "list configmaps ns", "create configmaps ns"],
    ),
    (
        "non-resource URLs: exact and prefix",
        [
            cr("urls", rule("get", urls="/healthz,/apis/*")),
            crb("urls", "Group:system:authenticated"),
        ],
        who("x", "system:authenticated"),
        ["get /healthz", "get /apis/apps", "get /apis/"],
        ["get /healthzfoo", "get /apis", "post /healthz", "get /api"],
    ),
    (
        "URL * prefix without slash",
        [cr("urls", rule("get", urls="/healthz*")), crb("urls", "User:x")],
        who("x"),
        ["get /healthz", "get /healthzfoo", "get /healthz/etcd"],
        ["get /health"],
    ),
    (
        "non-resource rules are dead through a RoleBinding",
        [cr("urls", rule("get", urls="*")), rb("ns1", "ClusterRole:urls", "User:x")],
        who("x"),
        [],
        ["get /healthz"],
    ),
    (
        "ServiceAccount without namespace in a RoleBinding means the binding's namespace",
        [role("ns1", "r", rule("get", "", "pods")), rb("ns1", "Role:r", "ServiceAccount:sa")],
        who("system:serviceaccount:ns1:sa"),
        ["get pods ns1"],
        ["get pods ns2"],
    ),
    (
        "the same ServiceAccount subject does not match another namespace's account",
        [role("ns1", "r", rule("get", "", "pods")), rb("ns1", "Role:r", "ServiceAccount:sa")],
        who("system:serviceaccount:ns2:sa"),
        [],
        ["get pods ns1"],
    ),
    (
        "ServiceAccount of another namespace named explicitly",
        [role("ns1", "r", rule("get", "", "pods")), rb("ns1", "Role:r", "ServiceAccount:ns2/sa")],
        who("system:serviceaccount:ns2:sa"),
        ["get pods ns1"],
        ["get pods ns2"],
    ),
    (
        "ServiceAccount without namespace in a ClusterRoleBinding never matches",
        [READ_PODS, crb("read-pods", "ServiceAccount:sa")],
        who("system:serviceaccount:default:sa"),
        [],
        ["get pods default"],
    ),
    (
        "Role referenced by a RoleBinding resolves in the binding's namespace",
        [role("ns2", "r", rule("get", "", "pods")), rb("ns1", "Role:r", "User:u")],
        who("u"),
        [],
        ["get pods ns1", "get pods ns2"],
    ),
    (
        "missing role grants nothing but does not break others",
        [READ_PODS, crb("gone", "User:u"), crb("read-pods", "User:u")],
        who("u"),
        ["get pods ns"],
        ["delete pods ns"],
    ),
    (
        "verbs are case-sensitive, user names are exact, * user is not a wildcard",
        [READ_PODS, crb("read-pods", "User:*"), crb("read-pods", "User:Alice", name="b2")],
        who("alice"),
        [],
        ["get pods ns", "GET pods ns"],
    ),
    (
        "namespaces NAME is authorized in namespace NAME",
        [
            cr("ns-reader", rule("get", "", "namespaces")),
            rb("team", "ClusterRole:ns-reader", "User:u"),
        ],
        who("u"),
        ["get namespaces team team"],
        ["get namespaces - other", "list namespaces -"],
    ),
]  # fmt: skip


@pytest.mark.parametrize(
    ("objs", "identity", "allowed", "denied"),
    [pytest.param(o, i, a, d, id=n) for n, o, i, a, d in TABLE],
)
def test_table(objs: list, identity: Identity, allowed: list[str], denied: list[str]) -> None:
    authz = Authorizer(snap(*objs))
    for spec in allowed:
        assert authz.allows(Request(identity, req(spec))), spec
        assert authz.decide(Request(identity, req(spec))).allowed, spec
    for spec in denied:
        assert not authz.allows(Request(identity, req(spec))), spec
        assert not authz.decide(Request(identity, req(spec))).grants, spec


def test_reason_strings_match_the_apiserver() -> None:
    authz = Authorizer(
        snap(
            cr("system:discovery", rule("get", urls="/healthz")),
            crb("system:discovery", "Group:system:authenticated", name="system:discovery"),
            role("kube-system", "lease", rule("get", "coordination.k8s.io", "leases")),
            rb("kube-system", "Role:lease", "ServiceAccount:kube-system/agent", name="agent-rb"),
        )
    )
    d = authz.decide(Request(who("x", "system:authenticated"), req("get /healthz")))
    assert d.reason() == (
        'RBAC: allowed by ClusterRoleBinding "system:discovery" of ClusterRole '
        '"system:discovery" to Group "system:authenticated"'
    )
    d = authz.decide(
        Request(
            who("system:serviceaccount:kube-system:agent"),
            req("get leases.coordination.k8s.io kube-system x"),
        )
    )
    assert d.reason() == (
        'RBAC: allowed by RoleBinding "agent-rb/kube-system" of Role "lease" to '
        'ServiceAccount "agent/kube-system"'
    )


def test_first_grant_follows_visit_order() -> None:
    # ClusterRoleBindings (by name) come before RoleBindings (by namespace, name).
    objs = [
        READ_PODS,
        rb("ns", "ClusterRole:read-pods", "User:u", name="a-rb"),
        crb("read-pods", "User:u", name="z-crb"),
        crb("read-pods", "Group:g", name="m-crb"),
    ]
    d = Authorizer(snap(*objs)).decide(Request(who("u", "g"), req("get pods ns")))
    assert [g.binding.name for g in d.grants] == ["m-crb", "z-crb", "a-rb"]
    assert [g.subject.name for g in d.grants] == ["g", "u", "u"]


def test_every_allowing_rule_is_a_grant() -> None:
    r = cr("two", rule("get", "", "pods"), rule("get,list", "", "pods,secrets"))
    d = Authorizer(snap(r, crb("two", "User:u"))).decide(Request(who("u"), req("get pods ns")))
    assert [g.rule_index for g in d.grants] == [0, 1]


def test_missing_roles_are_reported_and_effective_rules_listed() -> None:
    authz = Authorizer(snap(READ_PODS, crb("gone", "User:u"), crb("read-pods", "Group:g")))
    assert {k.name for k in authz.missing_roles} == {"gone"}
    assert authz.effective_rules(who("u", "g"), "") == list(READ_PODS.rules)
    assert authz.effective_rules(who("u"), "") == []


def test_identity_groups_are_not_invented() -> None:
    # The authorizer takes the identity as authenticated; adding groups is the caller's job.
    authz = Authorizer(snap(READ_PODS, crb("read-pods", "Group:system:authenticated")))
    assert not authz.allows(Request(who("alice"), req("get pods ns")))
    assert authz.allows(Request(who("alice", "system:authenticated"), req("get pods ns")))


# ---- laws --------------------------------------------------------------------------------

VERBS = st.sampled_from(["get", "list", "watch", "create", "delete", "*"])
RESOURCES = st.sampled_from(["pods", "pods/log", "secrets", "*", "*/log", "pods/*"])
GROUPS = st.sampled_from(["", "apps", "*"])
NAMES = st.sampled_from(["", "a"])
URLS = st.sampled_from(["/healthz", "/healthz*", "/api/*", "*", "/api"])


@st.composite
def rules(draw: st.DrawFn) -> PolicyRule:
    names = draw(st.lists(NAMES.filter(bool), max_size=1))
    verbs = draw(st.lists(VERBS, max_size=3))
    urls = draw(st.lists(URLS, max_size=2))
    shape = draw(st.sampled_from(["resource", "url", "mixed"]))
    if shape == "url":
        return PolicyRule.of(verbs, [], [], [], urls)
    groups = draw(st.lists(GROUPS, max_size=2))
    resources = draw(st.lists(RESOURCES, max_size=3))
    return PolicyRule.of(verbs, groups, resources, names, urls if shape == "mixed" else [])


@st.composite
def accesses(draw: st.DrawFn) -> Access:
    verb = draw(st.sampled_from(["get", "list", "watch", "create", "delete"]))
    if draw(st.integers(0, 4)) == 0:
        return Access(
            verb=verb,
            path=draw(st.sampled_from(["/healthz", "/healthzx", "/api", "/api/v1", "/"])),
            resource_request=False,
        )
    combined = draw(
        st.sampled_from(["pods", "pods/log", "secrets", "deployments/scale", "pods/status"])
    )
    res, _, sub = combined.partition("/")
    return Access(
        verb,
        draw(st.sampled_from(["", "apps"])),
        res,
        sub,
        draw(st.sampled_from(["", "ns"])),
        draw(NAMES),
    )


@settings(max_examples=200, deadline=None)
@given(rules(), accesses())
def test_rule_allows_iff_some_atom_allows(r: PolicyRule, a: Access) -> None:
    assert rule_allows(r, a) == any(rule_allows(atom, a) for atom in breakdown(r))


def _reference_allows(s: Snapshot, request: Request) -> bool:
    """The upstream algorithm without any index: visit every binding, check every rule."""
    roles = {x.key: x for x in s.roles}
    a = request.access
    ns = a.namespace if a.resource_request else ""
    for b in s.bindings:
        if b.kind == BindingKind.ROLE_BINDING and (not ns or b.namespace != ns):
            continue
        if applies_to(request.identity, b) is None or b.role_key not in roles:
            continue
        if any(rule_allows(x, a) for x in roles[b.role_key].rules):
            return True
    return False


SUBJECTS = st.sampled_from(
    [
        Subject("User", "alice"),
        Subject("User", "system:serviceaccount:ns:sa"),
        Subject("Group", "dev"),
        Subject("Group", "system:authenticated"),
        Subject("ServiceAccount", "sa", "ns"),
        Subject("ServiceAccount", "sa", ""),
        Subject("ServiceAccount", "sa", "other"),
    ]
)


@st.composite
def snapshots(draw: st.DrawFn) -> Snapshot:
    crs = [cr(f"c{i}", *draw(st.lists(rules(), max_size=3))) for i in range(3)]
    roles_ = [role("ns", f"r{i}", *draw(st.lists(rules(), max_size=3))) for i in range(2)]
    bindings = []
    for i in range(draw(st.integers(0, 6))):
        subjects = tuple(draw(st.lists(SUBJECTS, min_size=1, max_size=3)))
        if draw(st.booleans()):
            ref = RoleRef(RoleKind.CLUSTER_ROLE, f"c{draw(st.integers(0, 3))}")
            bindings.append(Binding(BindingKind.CLUSTER_ROLE_BINDING, f"b{i}", "", ref, subjects))
        else:
            kind = draw(st.sampled_from([RoleKind.ROLE, RoleKind.CLUSTER_ROLE]))
            ref = RoleRef(kind, f"{'r' if kind == RoleKind.ROLE else 'c'}{draw(st.integers(0, 2))}")
            ns = draw(st.sampled_from(["ns", "other"]))
            bindings.append(Binding(BindingKind.ROLE_BINDING, f"b{i}", ns, ref, subjects))
    return Snapshot(roles=tuple(crs + roles_), bindings=tuple(bindings))


IDENTITIES = st.sampled_from(
    [
        who("alice"),
        who("alice", "dev"),
        who("bob", "system:authenticated"),
        who("system:serviceaccount:ns:sa", "system:authenticated", "system:serviceaccounts"),
        who("system:serviceaccount:other:sa"),
    ]
)


@settings(max_examples=200, deadline=None)
@given(snapshots(), IDENTITIES, st.lists(accesses(), min_size=1, max_size=5))
def test_indexed_authorizer_matches_the_plain_algorithm(
    s: Snapshot, identity: Identity, reqs: list[Access]
) -> None:
    authz = Authorizer(s)
    for a in reqs * 2:  # twice: the second pass answers from the caches
        request = Request(identity, a)
        expected = _reference_allows(s, request)
        assert authz.allows(request) == expected
        assert authz.decide(request).allowed == expected


def test_answers_are_cached_per_request() -> None:
    authz = Authorizer(snap(READ_PODS, crb("read-pods", "Group:dev")))
    r = Request(who("alice", "dev"), req("get pods ns"))
    assert authz.decide(r) is authz.decide(Request(who("alice", "dev"), req("get pods ns")))
    assert authz.allows(r) and authz.allows(r)
    # One lookup per (identity, scope), shared by every request of that identity; a
    # namespace is looked at only when the ClusterRoleBindings did not allow.
    alice = who("alice", "dev")
    assert authz.allows(Request(alice, req("list pods other")))
    assert set(authz._scoped) == {(alice, ""), (alice, "ns")}
    assert not authz.allows(Request(alice, req("delete pods x")))
    assert set(authz._scoped) == {(alice, ""), (alice, "ns"), (alice, "x")}

"""Laws of the recommendation, checked on random small clusters and random traffic."""

from __future__ import annotations

import itertools
import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rbac_advisor.analysis import AnalysisOptions, run
from rbac_advisor.authorizer import Authorizer
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

VERBS = ["get", "list", "watch", "create", "delete", "*"]
RESOURCES = ["pods", "pods/log", "secrets", "deployments", "*", "*/log"]
GROUPS = ["", "apps", "*"]
NAMES = ["a", "b"]
NAMESPACES = ["n1", "n2"]
USERS = ["u0", "u1", "system:serviceaccount:n1:sa"]
GROUP_NAMES = ["g0", "g1"]
URLS = ["/healthz", "/api", "/api/*", "*"]

IDENTITIES = [
    Identity("u0", ("g0",)),
    Identity("u1", ()),
    Identity("u1", ("g1",)),
    Identity("system:serviceaccount:n1:sa", ("g0",)),
]
CONCRETE_VERBS = ["get", "list", "watch", "create", "delete"]
CONCRETE_RES = [
    ("", "pods", ""),
    ("", "pods", "log"),
    ("", "secrets", ""),
    ("apps", "deployments", ""),
    ("apps", "deployments", "log"),
]
UNIVERSE = [
    Access(v, g, r, s, ns, n)
    for v, (g, r, s), ns, n in itertools.product(
        CONCRETE_VERBS, CONCRETE_RES, ["", *NAMESPACES], ["", *NAMES]
    )
] + [
    Access(v, path=p, resource_request=False)
    for v in ("get", "post")
    for p in ("/healthz", "/api", "/api/v1")
]

rules = st.one_of(
    st.builds(
        lambda v, g, r, n: PolicyRule.of(v, g, r, n),
        st.sets(st.sampled_from(VERBS), min_size=1, max_size=3),
        st.sets(st.sampled_from(GROUPS), min_size=1, max_size=2),
        st.sets(st.sampled_from(RESOURCES), min_size=1, max_size=3),
        st.one_of(st.just(set()), st.sets(st.sampled_from(NAMES), min_size=1, max_size=2)),
    ),
    st.builds(
        lambda v, u: PolicyRule.of(verbs=v, non_resource_urls=u),
        st.sets(st.sampled_from(["get", "post", "*"]), min_size=1, max_size=2),
        st.sets(st.sampled_from(URLS), min_size=1, max_size=2),
    ),
)
subjects = st.sampled_from(
    [Subject("User", u, "", "rbac.authorization.k8s.io") for u in ("u0", "u1")]
    + [Subject("Group", g, "", "rbac.authorization.k8s.io") for g in GROUP_NAMES]
    + [Subject("ServiceAccount", "sa", "n1"), Subject("ServiceAccount", "sa", "")]
)


@st.composite
def clusters(draw: st.DrawFn) -> Snapshot:
    roles: list[Role] = []
    bindings: list[Binding] = []
    for i in range(draw(st.integers(1, 3))):
        roles.append(
            Role(
                RoleKind.CLUSTER_ROLE,
                f"cr{i}",
                "",
                tuple(draw(st.lists(rules, min_size=1, max_size=3))),
            )
        )
    for i in range(draw(st.integers(0, 2))):
        ns = draw(st.sampled_from(NAMESPACES))
        resource_rules = [
            r for r in draw(st.lists(rules, min_size=1, max_size=3)) if not r.non_resource_urls
        ]
        roles.append(Role(RoleKind.ROLE, f"r{i}", ns, tuple(resource_rules)))
    for i in range(draw(st.integers(1, 4))):
        role = draw(st.sampled_from(roles))
        subs = tuple(draw(st.lists(subjects, min_size=1, max_size=2, unique=True)))
        if role.kind == RoleKind.ROLE:
            bindings.append(
                Binding(
                    BindingKind.ROLE_BINDING,
                    f"b{i}",
                    role.namespace,
                    RoleRef(RoleKind.ROLE, role.name),
                    subs,
                )
            )
        elif draw(st.booleans()):
            bindings.append(
                Binding(
                    BindingKind.CLUSTER_ROLE_BINDING,
                    f"b{i}",
                    "",
                    RoleRef(RoleKind.CLUSTER_ROLE, role.name),
                    subs,
                )
            )
        else:
            bindings.append(
                Binding(
                    BindingKind.ROLE_BINDING,
                    f"b{i}",
                    draw(st.sampled_from(NAMESPACES)),
                    RoleRef(RoleKind.CLUSTER_ROLE, role.name),
                    subs,
                )
            )
    return Snapshot(tuple(roles), tuple(bindings))


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[Snapshot, list[Observation]]:
    snap = draw(clusters())
    authz = Authorizer(snap)
    obs = []
    picks = draw(
        st.lists(
            st.tuples(st.sampled_from(IDENTITIES), st.sampled_from(UNIVERSE)),
            max_size=25,
            unique=True,
        )
    )
    for ident, access in picks:
        allowed = authz.allows(Request(ident, access))
        obs.append(
            Observation(
                ident,
                access,
                Decision.ALLOW if allowed else Decision.FORBID,
                1,
                0.0,
                0.0,
                frozenset({0}),
            )
        )
    return snap, obs


SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(scenarios())
def test_never_grants_more_and_keeps_every_observed_outcome(
    case: tuple[Snapshot, list[Observation]],
) -> None:
    snap, obs = case
    res = run(snap, obs, AnalysisOptions())
    before, after = Authorizer(snap), Authorizer(res.after)
    for o in obs:
        req = Request(o.identity, o.access)
        assert after.allows(req) == (o.decision == Decision.ALLOW), (o, res.plan)
    for ident in IDENTITIES:
        for access in UNIVERSE:
            req = Request(ident, access)
            if after.allows(req):
                assert before.allows(req), (req, res.plan)


@SETTINGS
@given(scenarios(), st.randoms(use_true_random=False))
def test_input_order_does_not_change_output(
    case: tuple[Snapshot, list[Observation]], rnd: random.Random
) -> None:
    snap, obs = case
    shuffled = list(obs)
    rnd.shuffle(shuffled)
    roles, bindings = list(snap.roles), list(snap.bindings)
    rnd.shuffle(roles)
    rnd.shuffle(bindings)
    a = run(snap, obs, AnalysisOptions())
    b = run(Snapshot(tuple(roles), tuple(bindings)), shuffled, AnalysisOptions())
    assert a.plan == b.plan

"""Differential test: our Authorizer vs the real apiserver's SubjectAccessReview.

Random Roles, ClusterRoles and bindings over small alphabets are created on the real
cluster, read back through cluster.fetch + manifests.parse_objects (which tests the loader
too), and thousands of random requests are asked of both. They must agree on every one,
and for every allow the apiserver's reason must be one of the grants we found.
Set RBAC_ADVISOR_DIFF_SEED to replay a run.
"""

from __future__ import annotations

import os
import random
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pytest
from kube import Kube
from kubernetes import client as kc

from rbac_advisor import cluster
from rbac_advisor.authorizer import Authorizer
from rbac_advisor.manifests import parse_objects
from rbac_advisor.rbac import Access, Identity, Request

RBAC = "rbac.authorization.k8s.io"
CASES = int(os.environ.get("RBAC_ADVISOR_DIFF_CASES") or 3000)
PREFIX = "diff-"

VERBS = ["get", "list", "watch", "create", "delete", "*"]
RESOURCES = ["pods", "pods/log", "secrets", "*", "*/status", "deployments"]
GROUPS = ["", "apps", "*"]
URLS = ["/healthz", "/api/*", "*"]
URL_VERBS = ["get", "post", "*"]
NAMESPACES = ["ns0", "ns1", "ns2"]
USERS = [f"u{i}" for i in range(10)]
GROUP_NAMES = [f"g{i}" for i in range(5)]
SAS = ["sa0", "sa1"]

REQ_VERBS = ["get", "list", "watch", "create", "delete", "update", "patch"]
REQ_GROUPS = ["", "apps", "batch"]
REQ_RESOURCES = ["pods", "secrets", "deployments", "configmaps"]
REQ_SUBRESOURCES = ["", "", "", "log", "status", "exec"]
REQ_NAMESPACES = [*NAMESPACES, "", "other"]
REQ_NAMES = ["", "a", "b"]
REQ_PATHS = ["/healthz", "/healthz/etcd", "/api", "/api/v1", "/apis", "/version", "/metrics"]
REQ_URL_VERBS = ["get", "post", "put", "delete"]


def some(rng: random.Random, values: list[str], most: int = 2) -> list[str]:
    return rng.sample(values, rng.randint(1, most))


def random_rule(rng: random.Random, cluster_scoped: bool) -> dict[str, Any]:
    if cluster_scoped and rng.random() < 0.2:
        return {"nonResourceURLs": some(rng, URLS), "verbs": some(rng, URL_VERBS)}
    rule: dict[str, Any] = {
        "apiGroups": some(rng, GROUPS),
        "resources": some(rng, RESOURCES),
        "verbs": some(rng, VERBS, 3),
    }
    if rng.random() < 0.25:
        rule["resourceNames"] = ["a"]
    return rule


def random_subject(rng: random.Random, in_namespace: bool) -> dict[str, Any]:
    kind = rng.choice(["User", "User", "Group", "ServiceAccount"])
    if kind == "User":
        return {"kind": "User", "apiGroup": RBAC, "name": rng.choice(USERS)}
    if kind == "Group":
        return {"kind": "Group", "apiGroup": RBAC, "name": rng.choice(GROUP_NAMES)}
    sa: dict[str, Any] = {"kind": "ServiceAccount", "name": rng.choice(SAS)}
    # A RoleBinding may leave the SA namespace out (defaults to the binding's namespace);
    # a ClusterRoleBinding must name it.
    if not in_namespace or rng.random() < 0.6:
        sa["namespace"] = rng.choice(NAMESPACES)
    return sa


def random_objects(rng: random.Random) -> list[tuple[str, dict[str, Any]]]:
    """(kind, body) pairs; roles before bindings, a few roleRefs dangle on purpose."""
    out: list[tuple[str, dict[str, Any]]] = []
    role_names = [f"{PREFIX}r{i}" for i in range(15)]
    cr_names = [f"{PREFIX}c{i}" for i in range(40)]
    for ns in NAMESPACES:
        for name in role_names:
            rules = [random_rule(rng, False) for _ in range(rng.randint(1, 3))]
            out.append(("Role", {"metadata": {"name": name, "namespace": ns}, "rules": rules}))
    for name in cr_names:
        rules = [random_rule(rng, True) for _ in range(rng.randint(1, 3))]
        out.append(("ClusterRole", {"metadata": {"name": name}, "rules": rules}))
    for ns in NAMESPACES:
        for i in range(25):
            if rng.random() < 0.5:
                ref = {"apiGroup": RBAC, "kind": "Role",
                       "name": rng.choice([*role_names, f"{PREFIX}missing"])}  # fmt: skip
            else:
                ref = {"apiGroup": RBAC, "kind": "ClusterRole",
                       "name": rng.choice([*cr_names, "view", f"{PREFIX}missing"])}  # fmt: skip
            subjects = [random_subject(rng, True) for _ in range(rng.randint(1, 3))]
            body = {"metadata": {"name": f"{PREFIX}rb{i}", "namespace": ns}, "roleRef": ref,
                    "subjects": subjects}  # fmt: skip
            out.append(("RoleBinding", body))
    for i in range(30):
        ref = {"apiGroup": RBAC, "kind": "ClusterRole", "name": rng.choice(cr_names)}
        subjects = [random_subject(rng, False) for _ in range(rng.randint(1, 3))]
        out.append(("ClusterRoleBinding",
                    {"metadata": {"name": f"{PREFIX}crb{i}"}, "roleRef": ref,
                     "subjects": subjects}))  # fmt: skip
    return out


def random_identity(rng: random.Random) -> Identity:
    extra = ["system:authenticated"] if rng.random() < 0.3 else []
    if rng.random() < 0.3:
        ns = rng.choice(NAMESPACES)
        user = f"system:serviceaccount:{ns}:{rng.choice(SAS)}"
        groups = ["system:serviceaccounts", f"system:serviceaccounts:{ns}", *extra]
    else:
        user = rng.choice(USERS)
        groups = rng.sample(GROUP_NAMES, rng.randint(0, 2)) + extra
    return Identity(user, tuple(sorted(groups)))


def random_access(rng: random.Random) -> Access:
    if rng.random() < 0.15:
        return Access(verb=rng.choice(REQ_URL_VERBS), path=rng.choice(REQ_PATHS),
                      resource_request=False)  # fmt: skip
    return Access(
        verb=rng.choice(REQ_VERBS),
        api_group=rng.choice(REQ_GROUPS),
        resource=rng.choice(REQ_RESOURCES),
        subresource=rng.choice(REQ_SUBRESOURCES),
        namespace=rng.choice(REQ_NAMESPACES),
        name=rng.choice(REQ_NAMES),
    )


def sar_body(req: Request) -> dict[str, Any]:
    a = req.access
    spec: dict[str, Any] = {"user": req.identity.user, "groups": list(req.identity.groups)}
    if a.resource_request:
        spec["resourceAttributes"] = {
            "verb": a.verb, "group": a.api_group, "resource": a.resource,
            "subresource": a.subresource, "namespace": a.namespace, "name": a.name,
        }  # fmt: skip
    else:
        spec["nonResourceAttributes"] = {"verb": a.verb, "path": a.path}
    return {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": spec}


@dataclass
class Verdict:
    allowed: bool
    reason: str


def ask(authz: kc.AuthorizationV1Api, req: Request) -> Verdict:
    st = authz.create_subject_access_review(sar_body(req)).status
    return Verdict(bool(st.allowed), st.reason or "")


def create(rbac: kc.RbacAuthorizationV1Api, kind: str, body: dict[str, Any]) -> None:
    ns = body["metadata"].get("namespace")
    if kind == "Role":
        rbac.create_namespaced_role(ns, body)
    elif kind == "ClusterRole":
        rbac.create_cluster_role(body)
    elif kind == "RoleBinding":
        rbac.create_namespaced_role_binding(ns, body)
    else:
        rbac.create_cluster_role_binding(body)


def wait_for_rbac_cache(kube: Kube, authz: kc.AuthorizationV1Api) -> None:
    """Create canaries after everything else; once both allow, every informer has caught up."""
    rbac = kc.RbacAuthorizationV1Api(kube.admin_client())
    canary = {"apiGroups": ["canary.test"], "resources": ["canaries"], "verbs": ["get"]}
    subj = [{"kind": "User", "apiGroup": RBAC, "name": "canary"}]
    create(rbac, "Role", {"metadata": {"name": f"{PREFIX}canary", "namespace": "ns0"},
                          "rules": [canary]})  # fmt: skip
    create(rbac, "ClusterRole", {"metadata": {"name": f"{PREFIX}canary"},
                                 "rules": [{**canary, "verbs": ["list"]}]})  # fmt: skip
    for kind, role_kind in (("RoleBinding", "Role"), ("ClusterRoleBinding", "ClusterRole")):
        meta = {"name": f"{PREFIX}canary"} | ({"namespace": "ns0"} if kind == "RoleBinding" else {})
        create(rbac, kind, {"metadata": meta, "subjects": subj,
                            "roleRef": {"apiGroup": RBAC, "kind": role_kind,
                                        "name": f"{PREFIX}canary"}})  # fmt: skip
    probes = [
        Request(Identity("canary"), Access("get", "canary.test", "canaries", namespace="ns0")),
        Request(Identity("canary"), Access("list", "canary.test", "canaries")),
    ]
    deadline = time.monotonic() + 30
    while not all(ask(authz, p).allowed for p in probes):
        assert time.monotonic() < deadline, "apiserver RBAC cache never showed the canaries"
        time.sleep(0.1)


@pytest.mark.cluster
def test_authorizer_agrees_with_subject_access_review(kube: Kube) -> None:
    seed = int(os.environ.get("RBAC_ADVISOR_DIFF_SEED") or random.SystemRandom().randrange(2**32))
    print(f"differential seed: {seed} (RBAC_ADVISOR_DIFF_SEED={seed} to replay)")
    rng = random.Random(seed)
    for ns in NAMESPACES:
        kube.ensure_namespace(ns)
    rbac = kc.RbacAuthorizationV1Api(kube.admin_client())
    authz = kc.AuthorizationV1Api(kube.admin_client())
    objects = random_objects(rng)
    t0 = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        roles = [o for o in objects if o[0] in ("Role", "ClusterRole")]
        list(pool.map(lambda o: create(rbac, *o), roles))
        bindings = [o for o in objects if o[0] not in ("Role", "ClusterRole")]
        list(pool.map(lambda o: create(rbac, *o), bindings))
    wait_for_rbac_cache(kube, authz)
    t_created = time.monotonic() - t0

    live = cluster.fetch(str(kube.kubeconfig("admin")), None, False)
    ours = Authorizer(parse_objects((f"live:{i}", o) for i, o in enumerate(live)))
    requests = [Request(random_identity(rng), random_access(rng)) for _ in range(CASES)]
    t1 = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        verdicts = list(pool.map(lambda r: ask(authz, r), requests))
    t_sar = time.monotonic() - t1

    disagreements = []
    for req, theirs in zip(requests, verdicts, strict=True):
        mine = ours.decide(req)
        reasons = {g.reason() for g in mine.grants}
        if mine.allowed != theirs.allowed or (theirs.allowed and theirs.reason not in reasons):
            disagreements.append((req, mine.allowed, sorted(reasons), theirs))
    allowed = sum(v.allowed for v in verdicts)
    print(f"differential: {len(objects)} objects created in {t_created:.1f}s, {CASES} SARs in "
          f"{t_sar:.1f}s, {allowed} allowed, {len(disagreements)} disagreements")  # fmt: skip
    for req, mine, reasons, theirs in disagreements[:30]:
        print(f"  {req.identity} {req.access.display()}: ours={mine} {reasons} "
              f"apiserver={theirs.allowed} {theirs.reason!r}")  # fmt: skip
    assert not disagreements, f"{len(disagreements)} disagreements (seed {seed})"
    # The alphabets must exercise both outcomes, or the comparison says little.
    assert CASES * 0.1 < allowed < CASES * 0.9, allowed


def test_reason_names_the_defaulted_service_account_namespace() -> None:
    # Found by this differential test: describeSubject in rule.go prints the binding's
    # namespace for a namespace-less ServiceAccount subject of a RoleBinding.
    from rbac_advisor.rbac import (
        BindingKey,
        BindingKind,
        Grant,
        PolicyRule,
        RoleKey,
        RoleKind,
        Subject,
    )

    grant = Grant(
        BindingKey(BindingKind.ROLE_BINDING, "rb", "ns0"),
        RoleKey(RoleKind.CLUSTER_ROLE, "c"),
        0,
        PolicyRule.of(["get"], [""], ["pods"]),
        Subject("ServiceAccount", "sa1"),
    )
    assert grant.reason() == (
        'RBAC: allowed by RoleBinding "rb/ns0" of ClusterRole "c" to ServiceAccount "sa1/ns0"'
    )

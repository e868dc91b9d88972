"""Benchmark: replay observed requests against a cluster of 5,000 bindings.

Usage: .venv/bin/python bench/bench_verify.py [--bindings N] [--requests N] [--seed S]

Builds a synthetic cluster (ClusterRoles, namespaced Roles, RoleBindings and
ClusterRoleBindings to users, groups and service accounts), draws usage entries (identity,
access, logged decision, count) whose decisions come from the cluster itself, prunes a tenth
of the bindings, and replays every entry against the pruned state with cold caches.
Prints entries per second (each entry is one distinct request with a count).
"""

from __future__ import annotations

import argparse
import random
import time

from rbac_advisor.authorizer import Authorizer
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
    authenticated_identity,
)
from rbac_advisor.replay import Entry, intended, replay_report

VERBS = ["get", "list", "watch", "create", "update", "patch", "delete"]
RESOURCES = [
    ("", "pods"), ("", "pods/log"), ("", "services"), ("", "configmaps"), ("", "secrets"),
    ("apps", "deployments"), ("apps", "statefulsets"), ("batch", "jobs"),
    ("networking.k8s.io", "ingresses"), ("", "events"),
]  # fmt: skip


def make_cluster(
    rng: random.Random, n_bindings: int, n_users: int = 2000, sas_per_namespace: int = 10
) -> tuple[Snapshot, list[Identity], list[str]]:
    namespaces = [f"ns{i}" for i in range(100)]
    users = [f"user{i}" for i in range(n_users)]
    groups = [f"team{i}" for i in range(100)]
    roles: list[Role] = []
    for i in range(200):
        rules = tuple(
            PolicyRule.of(rng.sample(VERBS, rng.randint(1, 4)), [g], [r])
            for g, r in rng.sample(RESOURCES, rng.randint(1, 5))
        )
        roles.append(Role(RoleKind.CLUSTER_ROLE, f"cr{i}", rules=rules))
    for ns in namespaces:
        for j in range(5):
            rules = tuple(
                PolicyRule.of(rng.sample(VERBS, rng.randint(1, 3)), [g], [r])
                for g, r in rng.sample(RESOURCES, rng.randint(1, 4))
            )
            roles.append(Role(RoleKind.ROLE, f"role{j}", ns, rules))
    bindings: list[Binding] = []
    for i in range(n_bindings):
        subjects = []
        for _ in range(rng.randint(1, 3)):
            pick = rng.random()
            if pick < 0.6:
                subjects.append(Subject("User", rng.choice(users)))
            elif pick < 0.85:
                subjects.append(Subject("Group", rng.choice(groups)))
            else:
                subjects.append(
                    Subject(
                        "ServiceAccount",
                        f"sa{rng.randint(0, sas_per_namespace - 1)}",
                        rng.choice(namespaces),
                    )
                )
        if i % 10 == 0:
            ref = RoleRef(RoleKind.CLUSTER_ROLE, f"cr{rng.randint(0, 199)}")
            bindings.append(
                Binding(BindingKind.CLUSTER_ROLE_BINDING, f"crb{i}", "", ref, tuple(subjects))
            )
        else:
            ns = rng.choice(namespaces)
            if rng.random() < 0.5:
                ref = RoleRef(RoleKind.ROLE, f"role{rng.randint(0, 4)}")
            else:
                ref = RoleRef(RoleKind.CLUSTER_ROLE, f"cr{rng.randint(0, 199)}")
            bindings.append(Binding(BindingKind.ROLE_BINDING, f"rb{i}", ns, ref, tuple(subjects)))
    identities = []
    for u in users:
        identities.append(authenticated_identity(u, rng.sample(groups, rng.randint(0, 3))))
    for ns in namespaces:
        for k in range(sas_per_namespace):
            identities.append(authenticated_identity(f"system:serviceaccount:{ns}:sa{k}"))
    snap = Snapshot(roles=tuple(sorted(roles, key=lambda r: r.key)), bindings=tuple(bindings))
    return snap, identities, namespaces


def make_entries(
    rng: random.Random, auth: Authorizer, identities: list[Identity], namespaces: list[str], n: int
) -> list[Entry]:
    entries: list[Entry] = []
    for _ in range(n):
        identity = rng.choice(identities)
        group, combined = rng.choice(RESOURCES)
        resource, _, sub = combined.partition("/")
        access = Access(
            rng.choice(VERBS), group, resource, sub, rng.choice(namespaces),
            rng.choice(["", "", f"obj{rng.randint(0, 50)}"]),
        )  # fmt: skip
        allowed = auth.allows(Request(identity, access))
        decision = rng.choice(
            [Decision.ALLOW if allowed else Decision.FORBID] * 9 + [Decision.UNKNOWN]
        )
        entries.append((identity, access, decision, rng.randint(1, 50)))
    return entries


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bindings", type=int, default=5000)
    parser.add_argument("--requests", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    snap, identities, namespaces = make_cluster(rng, args.bindings)
    entries = make_entries(rng, Authorizer(snap), identities, namespaces, args.requests)
    pruned = Snapshot(bindings=tuple(rng.sample(snap.bindings, len(snap.bindings) // 10)))

    t0 = time.perf_counter()
    after_snap = intended(snap, Snapshot(), pruned)
    before, after = Authorizer(snap), Authorizer(after_snap)
    t1 = time.perf_counter()
    result = replay_report(entries, before, after)
    t2 = time.perf_counter()

    distinct = len({(i, a) for i, a, _, _ in entries})
    n_roles, n_bindings = len(snap.roles), len(snap.bindings)
    print(f"cluster: {n_roles} roles, {n_bindings} bindings; pruned {len(pruned.bindings)}")
    print(f"entries: {len(entries)} ({distinct} distinct requests, {result.requests} observed)")
    print(f"setup (intended state + 2 authorizers): {t1 - t0:.3f} s")
    print(f"replay: {t2 - t1:.3f} s = {len(entries) / (t2 - t1):,.0f} entries/s")
    print(f"changes: {len(result.changes)}; evaluated: {result.evaluated} requests")


if __name__ == "__main__":
    main()

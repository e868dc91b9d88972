"""The whole review loop on a real apiserver: analyze, apply, prune, replay the same traffic.

tests/scenario.py builds a cluster with the over-broad RBAC real clusters have and drives
real kubectl and Python-client traffic. Here `rbac-advisor analyze` reviews the live RBAC
against the apiserver's own audit log; roles.yaml is applied (server dry-run first) by a
non-masters cluster admin, prune.yaml deleted, and the same traffic sent again: every request
must get the same authorization decision as before, while a sample of the grants nobody used
is gone (`kubectl auth can-i` says no). `rbac-advisor verify` must agree offline.

The loop runs on a control plane of its own: pruning deletes every binding the traffic did not
use, which on the session cluster would include other test modules' objects, and their
bindings (some name the same users) would change what the review attributes.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import pytest
import scenario as sc
import traffic as tr
import yaml
from corpus import missing
from kube import Kube, MissingBinaries, check_binaries

pytestmark = pytest.mark.cluster
Key = tr.RequestKey

DEPLOYER = "system:serviceaccount:ci:deployer"
OPERATOR = "system:serviceaccount:monitoring:prometheus-operator"
RBAC_API = "rbac.authorization.k8s.io"


class Check(NamedTuple):
    """A `kubectl auth can-i` question: ``args`` after `can-i`, asked for ``user``."""

    what: str
    args: str
    user: str
    groups: tuple[str, ...] = ()


# Granted before the review and unused by the traffic. Service-account users get their
# groups from the apiserver when impersonated.
REMOVED = [
    Check("CI deployer (cluster-admin) reads secrets", "get secrets -n ci", DEPLOYER),
    Check("CI deployer (cluster-admin) deletes namespaces", "delete namespaces", DEPLOYER),
    Check("team-a-devs (edit) delete deployments", "delete deployments.apps -n team-a", "alice",
          ("team-a-devs", "qa")),
    Check("wildcard Role: delete pods", "delete pods -n team-b", "bob", ("team-b-devs",)),
    Check("wildcard Role: create rolebindings", f"create rolebindings.{RBAC_API} -n team-b",
          "bob", ("team-b-devs",)),
    Check("operator (*/* reads) reads a secret", "get secrets -n team-a", OPERATOR),
    Check("operator (*/* reads) lists secrets everywhere", "list secrets -A", OPERATOR),
    Check("aggregated platform-reader: list namespaces", "list namespaces", "erin",
          ("platform",)),
    Check("rbac-auditor: list clusterroles", f"list clusterroles.{RBAC_API}", "carol",
          ("auditors",)),
    Check("idle legacy-admin: dave creates rolebindings",
          f"create rolebindings.{RBAC_API} -n team-a", "dave", ("team-a-devs",)),
    Check("idle legacy-admin: former employee reads pods", "get pods -n team-a",
          "former-employee"),
    Check("idle old-ci-edit: create deployments", "create deployments.apps -n team-b",
          "system:serviceaccount:ci:old-deployer"),
    Check("web SA lists configmaps", "list configmaps -n team-a",
          "system:serviceaccount:team-a:web"),
]  # fmt: skip
# Used by the traffic: still granted after the review.
KEPT = [
    Check("CI deployer patches its deployment", "patch deployments.apps/web -n team-a", DEPLOYER),
    Check("operator lists pods everywhere", "list pods -A", OPERATOR),
    Check("erin impersonates alice", "impersonate users/alice", "erin", ("platform",)),
]


def can_i(kube: Kube, check: Check) -> str:
    """`kubectl auth can-i` as admin impersonating the check's user: "yes" or "no"."""
    flags = [f"--as={check.user}", *(f"--as-group={g}" for g in check.groups)]
    r = kube.kubectl("admin", "auth", "can-i", *check.args.split(), *flags, check=False)
    answer = r.stdout.strip()
    assert answer in ("yes", "no"), f"can-i {check}: {r.stdout}{r.stderr}"
    return answer


def advisor(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """The installed CLI, as a user runs it."""
    cmd = [sys.executable, "-m", "rbac_advisor", *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300)


def documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


@dataclass
class Recorded:
    """The cluster after the first run of the traffic, and the review of it."""

    kube: Kube
    out: Path
    audit: Path
    before: Path
    outcomes: list[tr.Outcome]
    events: list[dict[str, Any]]
    analyze: subprocess.CompletedProcess[str]
    answers: dict[str, str]


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Recorded]:
    try:
        check_binaries()
    except MissingBinaries as err:
        missing(str(err))
    for attempt in (1, 2):  # a second try covers a free port taken before the server bound it
        kube = Kube(tmp_path_factory.mktemp("loop-kube"), users=sc.USERS)
        try:
            kube.start()
            break
        except RuntimeError as err:
            if attempt == 2:
                pytest.fail(f"control plane did not start: {err}", pytrace=False)
    try:
        tmp = tmp_path_factory.mktemp("loop")
        sc.setup(kube)
        start = tr.audit_size(kube)
        outcomes = sc.drive(kube)
        # analyze's input: the real log with setup identities dropped
        audit = tmp / "audit.log"
        audit.write_bytes(b"".join(tr.scenario_lines(kube, 0)))
        events = tr.scenario_events(kube, start)
        before = tmp / "before.yaml"
        snap = advisor("snapshot", "--kubeconfig", kube.kubeconfig("admin"), "-o", before)
        assert snap.returncode == 0, snap.stderr
        out = tmp / "review"
        result = advisor("analyze", "--audit", audit, "--kubeconfig", kube.kubeconfig("admin"),
                         "--out", out)  # fmt: skip
        assert result.returncode == 0, f"analyze exited {result.returncode}:\n{result.stderr}"
        answers = {c.what: can_i(kube, c) for c in REMOVED + KEPT}
        yield Recorded(kube, out, audit, before, outcomes, events, result, answers)
    finally:
        kube.stop()


def test_traffic_exercises_both_outcomes(recorded: Recorded) -> None:
    forbidden = [o for o in recorded.outcomes if o.forbidden]
    assert {o.actor for o in forbidden} >= {"alice", "bob", "carol", "mallory", "erin", "web"}
    assert len(forbidden) < len(recorded.outcomes) / 3
    decided = tr.decisions(recorded.events)
    assert set(decided.values()) == {"allow", "forbid"}, sorted(decided.items())
    # The sample of grants to be removed is real: every one of them is granted now.
    assert all(recorded.answers[c.what] == "yes" for c in REMOVED + KEPT), recorded.answers


def test_review_outputs(recorded: Recorded) -> None:
    roles, prune = documents(recorded.out / "roles.yaml"), documents(recorded.out / "prune.yaml")
    findings = json.loads((recorded.out / "findings.json").read_text())
    pruned = {(d["kind"], d["metadata"]["name"]) for d in prune}
    # the over-broad and idle bindings go; nothing built in is touched
    assert {
        ("ClusterRoleBinding", "ci-deployer-cluster-admin"),
        ("ClusterRoleBinding", "devs-view"),
        ("ClusterRoleBinding", "monitoring-reader"),
        ("ClusterRoleBinding", "old-ci-edit"),
        ("RoleBinding", "legacy-admin"),
        ("RoleBinding", "team-a-devs-edit"),
    } <= pruned
    assert not [n for _, n in pruned if n.startswith("system:")]
    assert not {n for _, n in pruned} & {"cluster-admin", "admin", "edit", "view"}
    assert all(d["metadata"]["labels"]["rbac-advisor.io/generated"] == "true" for d in roles)
    t = findings["tightness"]
    assert t["usedCells"] > 0
    assert t["grantedCellsAfter"] < t["grantedCellsBefore"] / 5, t
    assert findings["requests"] == len(tr.audit_ids(recorded.events))


def test_verify_accepts_the_recommendation(recorded: Recorded) -> None:
    out = recorded.out
    r = advisor("verify", "--audit", recorded.audit, "--rbac", recorded.before,
                "--apply", out / "roles.yaml", "--prune", out / "prune.yaml", "--json")  # fmt: skip
    assert r.returncode == 0, f"verify exited {r.returncode}:\n{r.stdout}\n{r.stderr}"
    report = json.loads(r.stdout)
    assert report["changed"] == 0 and report["distinct"] > 0, report


def wait_changes_visible(kube: Kube) -> None:
    """Write one object of each RBAC kind last; once they decide requests, all before do."""
    from kubernetes import client as kc

    rbac = kc.RbacAuthorizationV1Api(kube.admin_client())
    rule = {"apiGroups": ["canary.test"], "resources": ["canaries"], "verbs": ["get"]}
    subjects = [sc.subject("User", "sync-canary")]
    rbac.create_namespaced_role("team-a", {"metadata": {"name": "sync-canary"}, "rules": [rule]})
    rbac.create_cluster_role({"metadata": {"name": "sync-canary"}, "rules": [rule]})
    rbac.create_namespaced_role_binding(
        "team-a", sc.binding("sync-canary", "Role", "sync-canary", subjects, "team-a")
    )
    rbac.create_cluster_role_binding(
        sc.binding("sync-canary", "ClusterRole", "sync-canary", subjects)
    )
    user, res, group = "sync-canary", "canaries", "canary.test"
    tr.wait_until(
        lambda: (
            tr.sar_allowed(kube, user, "get", res, group=group)
            and tr.sar_allowed(kube, user, "get", res, group=group, namespace="team-a", name="x")
        ),
        "RBAC cache shows the applied and pruned objects",
    )


def live_object(kube: Kube, doc: dict[str, Any]) -> dict[str, Any]:
    from kubernetes import client as kc

    api = kube.admin_client()
    rbac = kc.RbacAuthorizationV1Api(api)
    meta = doc["metadata"]
    obj = (
        rbac.read_cluster_role(meta["name"])
        if doc["kind"] == "ClusterRole"
        else rbac.read_namespaced_role(meta["name"], meta["namespace"])
    )
    return dict(api.sanitize_for_serialization(obj))


def compare_outcomes(before: list[tr.Outcome], after: list[tr.Outcome]) -> list[str]:
    """Steps whose authorization (or, except `auth can-i`, exit status) changed."""
    assert [o.key for o in before] == [o.key for o in after]
    problems = []
    for a, b in zip(before, after, strict=True):
        same_code = a.code == b.code or a.action.startswith("auth can-i")
        if a.forbidden != b.forbidden or not same_code:
            problems.append(f"{a.actor} {a.client} {a.action}: {a.code}/{a.detail!r} -> "
                            f"{b.code}/{b.detail!r}")  # fmt: skip
    return problems


def compare_requests(before: dict[Key, str], after: dict[Key, str]) -> list[str]:
    """Distinct audited requests whose decision changed, or that only one run sent."""
    problems = [f"only in the first run: {k}" for k in sorted(before.keys() - after.keys())]
    problems += [
        f"only in the replay: {k} {after[k]}" for k in sorted(after.keys() - before.keys())
    ]
    both = sorted(before.keys() & after.keys())
    return problems + [f"{before[k]} -> {after[k]}: {k}" for k in both if before[k] != after[k]]


def test_apply_prune_and_replay(recorded: Recorded) -> None:
    kube, out = recorded.kube, recorded.out
    roles_file, prune_file = out / "roles.yaml", out / "prune.yaml"

    # The apiserver accepts roles.yaml. Its escalation check passes for a cluster admin who is
    # not in system:masters, and refuses someone who may write RBAC objects but does not hold
    # what they grant (both bound only now, so neither is part of the review).
    kube.kubectl("admin", "apply", "--dry-run=server", "-f", str(roles_file))
    kube.kubectl("admin", "create", "clusterrolebinding", "ops-admin",
                 "--clusterrole=cluster-admin", f"--user={sc.OPS_ADMIN}")  # fmt: skip
    kube.kubectl("admin", "create", "clusterrole", "rbac-writer", "--verb=get,create,patch",
                 "--resource=roles,rolebindings,clusterroles,clusterrolebindings")  # fmt: skip
    kube.kubectl("admin", "create", "clusterrolebinding", "rbac-writer",
                 "--clusterrole=rbac-writer", "--user=nobody")  # fmt: skip
    kube.wait_allowed(sc.OPS_ADMIN, "escalate", "clusterroles", group=sc.RBAC)
    kube.wait_allowed("nobody", "create", "clusterrolebindings", group=sc.RBAC)
    refused = kube.kubectl("nobody", "apply", "--dry-run=server", "-f", str(roles_file),
                           check=False)  # fmt: skip
    assert "not currently held" in refused.stderr, refused.stderr
    kube.kubectl(sc.OPS_ADMIN, "apply", "--dry-run=server", "-f", str(roles_file))

    kube.kubectl(sc.OPS_ADMIN, "apply", "-f", str(roles_file))
    kube.kubectl(sc.OPS_ADMIN, "delete", "-f", str(prune_file))
    wait_changes_visible(kube)

    # What was applied is what is live, and no aggregation controller will refill it.
    for doc in documents(roles_file):
        if doc["kind"] in ("Role", "ClusterRole"):
            live = live_object(kube, doc)
            assert live.get("rules") == doc["rules"], f"{doc['kind']} {doc['metadata']['name']}"
            assert "aggregationRule" not in live, doc["metadata"]["name"]

    # The same traffic, from the same state, gets the same answers.
    sc.reset(kube)
    start = tr.audit_size(kube)
    replayed = sc.drive(kube)
    events = tr.scenario_events(kube, start)
    steps = compare_outcomes(recorded.outcomes, replayed)
    requests = compare_requests(tr.decisions(recorded.events), tr.decisions(events))
    assert not steps and not requests, "\n".join(["changed after the review:", *steps, *requests])

    after = {c.what: can_i(kube, c) for c in REMOVED + KEPT}
    still = [c.what for c in REMOVED if after[c.what] != "no"]
    lost = [c.what for c in KEPT if after[c.what] != "yes"]
    assert not still and not lost, f"still granted: {still}; lost: {lost}"

    print_numbers(recorded, replayed)


def print_numbers(recorded: Recorded, replayed: list[tr.Outcome]) -> None:
    decided = tr.decisions(recorded.events)
    findings = json.loads((recorded.out / "findings.json").read_text())
    n_roles = len(documents(recorded.out / "roles.yaml"))
    n_prune = len(documents(recorded.out / "prune.yaml"))
    steps = recorded.outcomes
    denied_steps = sum(o.forbidden for o in steps)
    print("\nreview loop on a live apiserver:")
    print(
        f"  steps driven: {len(steps)} ({sum(o.client == 'kubectl' for o in steps)} kubectl, "
        f"{sum(o.client == 'python' for o in steps)} python), {len(steps) - denied_steps} "
        f"authorized, {denied_steps} forbidden; replayed: {len(replayed)}, same outcomes"
    )
    print(
        f"  API requests audited: {len(tr.audit_ids(recorded.events))}; distinct: {len(decided)} "
        f"({sum(v == 'allow' for v in decided.values())} allowed, "
        f"{sum(v == 'forbid' for v in decided.values())} denied), all unchanged on replay"
    )
    print(f"  roles.yaml: {n_roles} objects; prune.yaml: {n_prune} objects")
    print(f"  removed-grant sample: {len(REMOVED)} can-i checks yes -> no; kept: {len(KEPT)}")
    print(f"  tightness: {json.dumps(findings['tightness'])}")
    print("  analyze: " + " | ".join(recorded.analyze.stderr.strip().splitlines()))  # fmt: skip

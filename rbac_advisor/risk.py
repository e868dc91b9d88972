"""Risk classes of RBAC permissions (rbac-good-practices). Pure: no I/O."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from rbac_advisor.rbac import PolicyRule


class Severity(enum.IntEnum):
    """How bad an unused grant of this class is; higher is worse."""

    LOW = 1
    MEDIUM = 2
    HIGH = 3


@dataclass(frozen=True, slots=True)
class RiskClass:
    """One named risk class."""

    name: str
    severity: Severity
    why: str


READ = ("get", "list", "watch")
WRITE = ("create", "update", "patch", "delete", "deletecollection")
WORKLOADS = (
    "pods",
    "deployments",
    "replicasets",
    "statefulsets",
    "daemonsets",
    "jobs",
    "cronjobs",
    "replicationcontrollers",
)

CLASSES: dict[str, RiskClass] = {
    c.name: c
    for c in (
        RiskClass(
            "secrets-read", Severity.HIGH, "reads Secret contents (list/watch return them too)"
        ),
        RiskClass("pod-exec", Severity.HIGH, "runs commands in or connects to running pods"),
        RiskClass(
            "workload-create", Severity.HIGH, "creates pods: any SA token, Secret or hostPath"
        ),
        RiskClass("escalate", Severity.HIGH, "grants permissions it does not hold"),
        RiskClass("bind", Severity.HIGH, "binds roles it does not hold"),
        RiskClass("impersonate", Severity.HIGH, "acts as other users, groups or service accounts"),
        RiskClass("nodes-proxy", Severity.HIGH, "kubelet API: exec in any pod, bypasses audit"),
        RiskClass("sa-token", Severity.HIGH, "mints service-account tokens"),
        RiskClass(
            "csr-approval", Severity.HIGH, "approves certificates, e.g. arbitrary client certs"
        ),
        RiskClass("webhook-config", Severity.HIGH, "intercepts or mutates every admitted object"),
        RiskClass(
            "persistentvolume", Severity.MEDIUM, "hostPath volumes reach the node filesystem"
        ),
        RiskClass("namespace-change", Severity.MEDIUM, "changes Pod Security labels of namespaces"),
        RiskClass("rbac-write", Severity.MEDIUM, "writes roles and bindings (escalation-checked)"),
        RiskClass("wildcard", Severity.MEDIUM, "a wildcard also grants future resources and verbs"),
    )
}


def _has(values: tuple[str, ...], *wanted: str) -> bool:
    return "*" in values or any(w in values for w in wanted)


def _res(rule: PolicyRule, group: str, *resources: str) -> bool:
    if not _has(rule.api_groups, group):
        return False
    for r in rule.resources:
        if r == "*" or r in resources:
            return True
        if r.startswith("*/") and any(x.endswith(r[1:]) for x in resources):
            return True
    return False


def classify(rule: PolicyRule) -> tuple[RiskClass, ...]:
    """Risk classes a rule (or one atom of it) falls into, most severe first."""
    found: list[str] = []
    if rule.non_resource_urls:
        if "*" in rule.verbs or "*" in rule.non_resource_urls:
            found.append("wildcard")
        return tuple(CLASSES[n] for n in found)
    v = rule.verbs
    if _res(rule, "", "secrets") and _has(v, *READ):
        found.append("secrets-read")
    sessions = ("pods/exec", "pods/attach", "pods/portforward", "pods/ephemeralcontainers")
    if _res(rule, "", *sessions) and _has(v, "get", "create", "patch", "update"):
        found.append("pod-exec")
    workload_groups = ("", "apps", "batch")
    if any(_res(rule, g, *WORKLOADS) for g in workload_groups) and _has(
        v, "create", "update", "patch"
    ):
        found.append("workload-create")
    if _res(rule, "rbac.authorization.k8s.io", "roles", "clusterroles"):
        if _has(v, "escalate"):
            found.append("escalate")
        if _has(v, "bind"):
            found.append("bind")
    rbac_objs = ("roles", "clusterroles", "rolebindings", "clusterrolebindings")
    if _res(rule, "rbac.authorization.k8s.io", *rbac_objs) and _has(v, *WRITE):
        found.append("rbac-write")
    if _has(v, "impersonate") and (
        _res(rule, "", "users", "groups", "serviceaccounts")
        or _res(rule, "authentication.k8s.io", "userextras", "uids")
    ):
        found.append("impersonate")
    if _res(rule, "", "nodes/proxy"):
        found.append("nodes-proxy")
    if _res(rule, "", "serviceaccounts/token") and _has(v, "create"):
        found.append("sa-token")
    csr = ("certificatesigningrequests/approval", "signers")
    if _res(rule, "certificates.k8s.io", *csr) and _has(v, "update", "patch", "approve"):
        found.append("csr-approval")
    hooks = ("validatingwebhookconfigurations", "mutatingwebhookconfigurations")
    if _res(rule, "admissionregistration.k8s.io", *hooks) and _has(v, *WRITE):
        found.append("webhook-config")
    if _res(rule, "", "persistentvolumes") and _has(v, "create"):
        found.append("persistentvolume")
    if _res(rule, "", "namespaces") and _has(v, "update", "patch"):
        found.append("namespace-change")
    if "*" in v or "*" in rule.resources or "*" in rule.api_groups:
        found.append("wildcard")
    classes = [CLASSES[n] for n in dict.fromkeys(found)]
    return tuple(sorted(classes, key=lambda c: -c.severity))

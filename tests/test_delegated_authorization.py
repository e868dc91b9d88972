"""Permissions checked by delegated authorization never show in the audit log: kept."""

from __future__ import annotations

import pytest
from rbac_builders import cr, crb, req, rule, snap, who

from rbac_advisor.analysis import AnalysisOptions, run
from rbac_advisor.diff import Observation, is_observable
from rbac_advisor.events import Decision
from rbac_advisor.rbac import Role

PROM = who("system:serviceaccount:monitoring:prometheus-k8s", "system:authenticated")


@pytest.mark.parametrize(
    "atom, observable",
    [
        (rule("get", "", "nodes/metrics"), False),  # the kubelet asks the apiserver (SAR)
        (rule("get", "", "nodes/proxy"), False),  # also used straight at the kubelet
        (rule("get", "", "nodes"), True),
        (rule("get", "example.com", "nodes/metrics"), True),  # not the kubelet's group
        (rule("get", urls="/metrics"), False),  # served by components behind kube-rbac-proxy
        (rule("get", urls="/metrics/slis"), False),
        (rule("get", urls="/livez*"), False),
        (rule("get", urls="/apis"), True),
        (rule("get", urls="/*"), True),  # a broad glob is narrowed to what was seen
        (rule("escalate", "rbac.authorization.k8s.io", "clusterroles"), False),
    ],
)
def test_what_an_audit_log_can_show(atom, observable: bool) -> None:  # type: ignore[no-untyped-def]
    assert is_observable(atom) is observable


def test_a_prometheus_role_keeps_what_the_kubelet_checks() -> None:
    # kube-prometheus' prometheus-k8s: only the apiserver's /metrics shows in the log.
    role = cr(
        "prometheus-k8s",
        rule("get", "", "nodes/metrics"),
        rule("get", urls="/metrics,/metrics/slis"),
        rule("list,watch", "", "pods,services,endpoints"),
    )
    binding = crb("prometheus-k8s", "ServiceAccount:monitoring/prometheus-k8s")
    seen = [
        Observation(PROM, req("list pods"), Decision.ALLOW, 3, 0.0, 1.0, frozenset({0})),
        Observation(PROM, req("get /metrics"), Decision.ALLOW, 9, 0.0, 1.0, frozenset({0})),
    ]
    result = run(snap(role, binding), seen, AnalysisOptions(window="w"))
    assert result.proof.sound
    (change,) = result.plan.changes
    assert rule("get", "", "nodes/metrics") in change.kept_unobservable
    rules = {r for o in result.plan.apply if isinstance(o, Role) for r in o.rules}
    assert any("nodes/metrics" in r.resources for r in rules)
    assert not any("services" in r.resources for r in rules)  # unused: still removed

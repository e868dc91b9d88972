"""Built-in Kubernetes resources (group, scope, short names) for resolving names offline. Pure.

Used where there is no discovery document to ask, e.g. ``can-i RESOURCE``: ``deploy`` ->
``deployments`` in ``apps``; ``nodes`` is cluster-scoped. Custom resources are not known
here: name them as ``RESOURCE.GROUP``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ApiResource:
    """One resource type: plural name, API group, whether namespaced, short names."""

    name: str
    group: str
    namespaced: bool
    short: tuple[str, ...] = ()

    @property
    def singular(self) -> str:
        """The singular form kubectl also accepts (``ingresses`` -> ``ingress``)."""
        n = self.name
        if n.endswith(("sses", "xes")):
            return n[:-2]
        if n.endswith("ies"):
            return n[:-3] + "y"
        return n[:-1] if n.endswith("s") else n


def _r(group: str, namespaced: bool, *entries: str) -> list[ApiResource]:
    out = []
    for entry in entries:
        name, *short = entry.split()
        out.append(ApiResource(name, group, namespaced, tuple(short)))
    return out


BUILTIN: tuple[ApiResource, ...] = (
    *_r("", True, "pods po", "services svc", "configmaps cm", "secrets", "serviceaccounts sa",
        "endpoints ep", "events ev", "persistentvolumeclaims pvc", "replicationcontrollers rc",
        "resourcequotas quota", "limitranges limits", "podtemplates", "bindings"),
    *_r("", False, "nodes no", "namespaces ns", "persistentvolumes pv", "componentstatuses cs",
        "users", "groups"),
    *_r("apps", True, "deployments deploy", "replicasets rs", "statefulsets sts",
        "daemonsets ds", "controllerrevisions"),
    *_r("batch", True, "jobs", "cronjobs cj"),
    *_r("autoscaling", True, "horizontalpodautoscalers hpa"),
    *_r("policy", True, "poddisruptionbudgets pdb"),
    *_r("networking.k8s.io", True, "ingresses ing", "networkpolicies netpol"),
    *_r("networking.k8s.io", False, "ingressclasses"),
    *_r("rbac.authorization.k8s.io", True, "roles", "rolebindings"),
    *_r("rbac.authorization.k8s.io", False, "clusterroles", "clusterrolebindings"),
    *_r("storage.k8s.io", False, "storageclasses sc", "volumeattachments", "csidrivers",
        "csinodes"),
    *_r("storage.k8s.io", True, "csistoragecapacities"),
    *_r("apiextensions.k8s.io", False, "customresourcedefinitions crd crds"),
    *_r("apiregistration.k8s.io", False, "apiservices"),
    *_r("admissionregistration.k8s.io", False, "mutatingwebhookconfigurations",
        "validatingwebhookconfigurations", "validatingadmissionpolicies",
        "validatingadmissionpolicybindings"),
    *_r("certificates.k8s.io", False, "certificatesigningrequests csr"),
    *_r("coordination.k8s.io", True, "leases"),
    *_r("discovery.k8s.io", True, "endpointslices"),
    *_r("scheduling.k8s.io", False, "priorityclasses pc"),
    *_r("node.k8s.io", False, "runtimeclasses"),
    *_r("flowcontrol.apiserver.k8s.io", False, "flowschemas", "prioritylevelconfigurations"),
    *_r("authorization.k8s.io", False, "selfsubjectaccessreviews", "selfsubjectrulesreviews",
        "subjectaccessreviews"),
    *_r("authorization.k8s.io", True, "localsubjectaccessreviews"),
    *_r("authentication.k8s.io", False, "tokenreviews", "selfsubjectreviews"),
)  # fmt: skip

_BY_NAME: dict[str, ApiResource] = {}
for _res in BUILTIN:
    for _alias in (_res.name, _res.singular, *_res.short):
        _BY_NAME.setdefault(_alias, _res)
_VERSION = re.compile(r"^v\d+((alpha|beta)\d+)?$")


def lookup(name: str, group: str | None = None) -> ApiResource | None:
    """A built-in resource by plural, singular or short name (and group, when given)."""
    res = _BY_NAME.get(name)
    if res is None:
        return None
    if group is not None and res.group != group:
        matches = [r for r in BUILTIN if r.name == name and r.group == group]
        return matches[0] if matches else None
    return res


def split_resource_arg(arg: str) -> tuple[str, str | None]:
    """As ParseResourceArg: ``res`` / ``res.group`` / ``res.version.group`` -> (res, group).

    The group is None when the argument names none. Lower-cased, as kubectl does.
    """
    parts = arg.lower().split(".")
    if len(parts) == 1:
        return parts[0], None
    if len(parts) >= 3 and _VERSION.match(parts[1]):
        return parts[0], ".".join(parts[2:])
    return parts[0], ".".join(parts[1:])

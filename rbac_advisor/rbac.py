"""RBAC vocabulary: rules, roles, bindings, subjects, requests. Pure values, no I/O.

Parsing of raw Kubernetes objects into these values lives in ``manifests.py``.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

RBAC_GROUP = "rbac.authorization.k8s.io"
SA_PREFIX = "system:serviceaccount:"
_DNS1123_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_SUBDOMAIN_RE = re.compile(rf"{_DNS1123_LABEL}(\.{_DNS1123_LABEL})*")
_DNS1123_LABEL_RE = re.compile(_DNS1123_LABEL)


def is_dns_label(name: str) -> bool:
    """IsDNS1123Label: lowercase letters, digits and ``-``, 63 characters at most."""
    return len(name) <= 63 and _DNS1123_LABEL_RE.fullmatch(name) is not None


def is_dns_subdomain(name: str) -> bool:
    """IsDNS1123Subdomain: DNS-1123 labels joined by dots, 253 characters at most."""
    return len(name) <= 253 and _DNS1123_SUBDOMAIN_RE.fullmatch(name) is not None


BOOTSTRAP_LABEL = ("kubernetes.io/bootstrapping", "rbac-defaults")
# User-facing default roles; protected even when a dump lost their bootstrap label.
DEFAULT_ROLE_NAMES = frozenset({"cluster-admin", "admin", "edit", "view"})


def norm(values: object) -> tuple[str, ...]:
    """Sort and de-duplicate a list of strings into a tuple (None -> ())."""
    if not values:
        return ()
    assert isinstance(values, list | tuple | set | frozenset)
    return tuple(sorted({str(v) for v in values}))


def object_path(kind: str, namespace: str, name: str) -> str:
    """``Kind/name`` for cluster-scoped objects, ``Kind/namespace/name`` for namespaced ones."""
    return f"{kind}/{namespace}/{name}" if namespace else f"{kind}/{name}"


class SubjectKind(enum.StrEnum):
    """The subject kinds RBAC knows; anything else never matches."""

    USER = "User"
    GROUP = "Group"
    SERVICE_ACCOUNT = "ServiceAccount"


class RoleKind(enum.StrEnum):
    """What a roleRef can point at."""

    ROLE = "Role"
    CLUSTER_ROLE = "ClusterRole"


class BindingKind(enum.StrEnum):
    """The two binding kinds."""

    ROLE_BINDING = "RoleBinding"
    CLUSTER_ROLE_BINDING = "ClusterRoleBinding"


_GO_ESCAPES = {
    "\a": "\\a",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\v": "\\v",
}


def go_quote(text: str) -> str:
    r"""``text`` quoted as Go's ``%q`` (``strconv.Quote``) writes it in reason strings.

    >>> print(go_quote('say "hi" \\ caf\u00e9\x01\u200b'))
    "say \"hi\" \\ café\x01\u200b"
    """
    if text.isprintable() and '"' not in text and "\\" not in text:
        return f'"{text}"'
    out = ['"']
    for ch in text:
        code = ord(ch)
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif ch.isprintable():
            out.append(ch)
        elif ch in _GO_ESCAPES:
            out.append(_GO_ESCAPES[ch])
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        elif code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    out.append('"')
    return "".join(out)


@dataclass(frozen=True, slots=True, order=True)
class Subject:
    """A binding subject. ``kind`` is a plain string so unknown kinds survive parsing."""

    kind: str
    name: str
    namespace: str = ""
    api_group: str = ""

    def display(self) -> str:
        """Format as the apiserver's reason string does (``ServiceAccount "name/ns"``)."""
        if self.kind == SubjectKind.SERVICE_ACCOUNT:
            return f"ServiceAccount {go_quote(f'{self.name}/{self.namespace}')}"
        return f"{self.kind} {go_quote(self.name)}"


@dataclass(frozen=True, slots=True, order=True)
class PolicyRule:
    """One RBAC rule; every list is a sorted, de-duplicated tuple."""

    verbs: tuple[str, ...] = ()
    api_groups: tuple[str, ...] = ()
    resources: tuple[str, ...] = ()
    resource_names: tuple[str, ...] = ()
    non_resource_urls: tuple[str, ...] = ()

    @staticmethod
    def of(
        verbs: object = (),
        api_groups: object = (),
        resources: object = (),
        resource_names: object = (),
        non_resource_urls: object = (),
    ) -> PolicyRule:
        """Build a rule from any string collections, normalising them."""
        return PolicyRule(
            norm(verbs),
            norm(api_groups),
            norm(resources),
            norm(resource_names),
            norm(non_resource_urls),
        )

    def compact(self) -> str:
        """Format like Kubernetes' CompactString, used in escalation errors."""
        parts = []
        for label, vals in (
            ("APIGroups", self.api_groups),
            ("Resources", self.resources),
            ("ResourceNames", self.resource_names),
            ("NonResourceURLs", self.non_resource_urls),
            ("Verbs", self.verbs),
        ):
            if vals:
                parts.append(f"{label}:[" + " ".join(f'"{v}"' for v in vals) + "]")
        return "{" + ", ".join(parts) + "}"


@dataclass(frozen=True, slots=True, order=True)
class LabelRequirement:
    """One matchExpressions entry: key, operator (In, NotIn, Exists, DoesNotExist), values."""

    key: str
    operator: str
    values: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, order=True)
class LabelSelector:
    """A label selector; matchLabels are folded into ``In`` requirements."""

    requirements: tuple[LabelRequirement, ...] = ()


@dataclass(frozen=True, slots=True, order=True)
class Role:
    """A Role (namespace set) or ClusterRole (namespace empty)."""

    kind: RoleKind
    name: str
    namespace: str = ""
    rules: tuple[PolicyRule, ...] = ()
    labels: tuple[tuple[str, str], ...] = ()
    annotations: tuple[tuple[str, str], ...] = ()
    aggregation: tuple[LabelSelector, ...] | None = None

    @property
    def key(self) -> RoleKey:
        """The identity of this role."""
        return RoleKey(self.kind, self.name, self.namespace)

    @property
    def builtin(self) -> bool:
        """True for bootstrap objects and ``system:`` names, which we never change."""
        if self.kind == RoleKind.CLUSTER_ROLE and self.name in DEFAULT_ROLE_NAMES:
            return True
        return BOOTSTRAP_LABEL in self.labels or self.name.startswith("system:")


@dataclass(frozen=True, slots=True, order=True)
class RoleKey:
    """Identity of a role: kind, name, and namespace for Roles."""

    kind: RoleKind
    name: str
    namespace: str = ""

    def display(self) -> str:
        """``ClusterRole/view`` or ``Role/ns/name``."""
        return object_path(self.kind, self.namespace, self.name)


@dataclass(frozen=True, slots=True, order=True)
class RoleRef:
    """A binding's roleRef."""

    kind: RoleKind
    name: str


@dataclass(frozen=True, slots=True, order=True)
class BindingKey:
    """Identity of a binding: kind, name, and namespace for RoleBindings."""

    kind: BindingKind
    name: str
    namespace: str = ""

    def display(self) -> str:
        """``ClusterRoleBinding/name`` or ``RoleBinding/ns/name``."""
        return object_path(self.kind, self.namespace, self.name)


@dataclass(frozen=True, slots=True, order=True)
class Binding:
    """A RoleBinding (namespace set) or ClusterRoleBinding (namespace empty)."""

    kind: BindingKind
    name: str
    namespace: str
    role_ref: RoleRef
    subjects: tuple[Subject, ...] = ()
    labels: tuple[tuple[str, str], ...] = ()
    annotations: tuple[tuple[str, str], ...] = ()

    @property
    def key(self) -> BindingKey:
        """The identity of this binding."""
        return BindingKey(self.kind, self.name, self.namespace)

    @property
    def role_key(self) -> RoleKey:
        """The role this binding points at (Roles resolve in the binding's namespace)."""
        if self.role_ref.kind == RoleKind.ROLE:
            return RoleKey(RoleKind.ROLE, self.role_ref.name, self.namespace)
        return RoleKey(RoleKind.CLUSTER_ROLE, self.role_ref.name)

    @property
    def builtin(self) -> bool:
        """True for bootstrap objects and ``system:`` names, which we never change."""
        return BOOTSTRAP_LABEL in self.labels or self.name.startswith("system:")


@dataclass(frozen=True, slots=True)
class Snapshot:
    """All RBAC objects of a cluster (or dump), plus what loading them had to say."""

    roles: tuple[Role, ...] = ()
    bindings: tuple[Binding, ...] = ()
    warnings: tuple[str, ...] = ()
    ignored_objects: int = 0
    source: str = ""
    namespaces: frozenset[str] | None = None
    """The cluster's namespaces; None when unknown (not listable, or not in the dump)."""

    def role(self, key: RoleKey) -> Role | None:
        """Look up one role by key (linear; use the authorizer's index on hot paths)."""
        for r in self.roles:
            if r.key == key:
                return r
        return None


@dataclass(frozen=True, slots=True, order=True)
class Identity:
    """The user a request was authorized as: name and groups (sorted)."""

    user: str
    groups: tuple[str, ...] = ()

    @property
    def privileged(self) -> bool:
        """In ``system:masters``: allowed everything before RBAC is consulted (A3)."""
        return MASTERS_GROUP in self.groups

    @property
    def service_account(self) -> tuple[str, str] | None:
        """(namespace, name) when the user is a service account.

        As ``serviceaccount.SplitUsername``: the namespace must be a DNS-1123 label and the
        name a DNS-1123 subdomain; any other ``system:serviceaccount:`` name is a plain user
        (impersonating it is checked on ``users``, and a binding names it as a User).
        """
        if not self.user.startswith(SA_PREFIX):
            return None
        ns, sep, name = self.user[len(SA_PREFIX) :].partition(":")
        if not sep or not is_dns_label(ns) or not is_dns_subdomain(name):
            return None
        return ns, name


@dataclass(frozen=True, slots=True, order=True)
class Access:
    """Authorizer attributes of a request without the user.

    Resource requests carry verb, api_group, resource, subresource, namespace and name;
    non-resource requests carry verb and path (``resource_request`` False).
    """

    verb: str
    api_group: str = ""
    resource: str = ""
    subresource: str = ""
    namespace: str = ""
    name: str = ""
    path: str = ""
    resource_request: bool = True

    @property
    def combined_resource(self) -> str:
        """``resource/subresource`` or ``resource``, the string RBAC rules are matched to."""
        return f"{self.resource}/{self.subresource}" if self.subresource else self.resource

    @property
    def target(self) -> str:
        """What was acted on: ``pods/log``, ``deployments.apps`` or a path like ``/healthz``."""
        if not self.resource_request:
            return self.path
        res = self.combined_resource
        return f"{res}.{self.api_group}" if self.api_group else res

    def display(self) -> str:
        """A compact human form: ``get pods/log "x" in ns`` or ``get /healthz``."""
        if not self.resource_request:
            return f"{self.verb} {self.path}"
        res = self.combined_resource
        if self.api_group:
            res = f"{res}.{self.api_group}"
        out = f"{self.verb} {res}"
        if self.name:
            out += f' "{self.name}"'
        out += f" in {self.namespace}" if self.namespace else " (cluster-wide)"
        return out


@dataclass(frozen=True, slots=True, order=True)
class Request:
    """One authorization question: who, and what."""

    identity: Identity
    access: Access


@dataclass(frozen=True, slots=True)
class Grant:
    """Provenance of an allow: which binding, role and rule allowed the request."""

    binding: BindingKey
    role: RoleKey
    rule_index: int
    rule: PolicyRule
    subject: Subject = field(default_factory=lambda: Subject("", ""))

    def reason(self) -> str:
        """The apiserver's ``authorization.k8s.io/reason`` string for this grant."""
        b = self.binding
        if b.kind == BindingKind.CLUSTER_ROLE_BINDING:
            where = f"ClusterRoleBinding {go_quote(b.name)}"
        else:
            where = f"RoleBinding {go_quote(f'{b.name}/{b.namespace}')}"
        subject = self.subject
        if subject.kind == SubjectKind.SERVICE_ACCOUNT and not subject.namespace:
            # As describeSubject in rule.go: a namespace-less SA subject is shown with
            # the binding's namespace.
            subject = Subject(subject.kind, subject.name, b.namespace, subject.api_group)
        return (
            f"RBAC: allowed by {where} of {self.role.kind} {go_quote(self.role.name)} "
            f"to {subject.display()}"
        )


ALL_AUTHENTICATED = "system:authenticated"
ALL_UNAUTHENTICATED = "system:unauthenticated"
ANONYMOUS = "system:anonymous"
SA_ALL_GROUP = "system:serviceaccounts"
MASTERS_GROUP = "system:masters"
NODES_GROUP = "system:nodes"
NODE_PREFIX = "system:node:"


def authenticated_identity(
    user: str, groups: Iterable[str] = (), *, add_sa_groups: bool = True
) -> Identity:
    """The identity the apiserver would authorize for ``user`` with ``groups``.

    Mirrors the authenticated-group adder and the impersonation filter: a service account
    user gets ``system:serviceaccounts`` and ``system:serviceaccounts:NS`` (impersonation
    adds them only when no group was requested, hence ``add_sa_groups``), and every user but
    ``system:anonymous`` gets ``system:authenticated`` unless it already carries
    ``system:authenticated`` or ``system:unauthenticated``.
    """
    out = list(groups)
    ident = Identity(user)
    sa = ident.service_account
    if sa is not None and add_sa_groups:
        out += [SA_ALL_GROUP, f"{SA_ALL_GROUP}:{sa[0]}"]
    if user != ANONYMOUS and not {ALL_AUTHENTICATED, ALL_UNAUTHENTICATED} & set(out):
        out.append(ALL_AUTHENTICATED)
    return Identity(user, norm(out))

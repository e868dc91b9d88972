"""View model of the HTML access-review report: plain frozen values, no engine types.

An adapter turns findings into a ``ReportView``; ``report.render`` turns that into HTML.
Dates and times are preformatted strings (an empty string means "never" or "unknown").
Pure: no I/O.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

APPLY_COMMANDS = ("kubectl apply -f roles.yaml", "kubectl delete -f prune.yaml")


class CellState(enum.StrEnum):
    """One cell of a granted-versus-used matrix (a resource and a verb)."""

    USED = "used"
    UNUSED = "unused"
    RISKY_UNUSED = "risky-unused"
    KEPT_UNOBSERVABLE = "kept-unobservable"
    NOT_GRANTED = "not-granted"


class Severity(enum.StrEnum):
    """How dangerous a grant is; declaration order is rank order."""

    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


class RiskClass(enum.StrEnum):
    """Privilege-escalation-sensitive grant classes; declaration order is display order."""

    SECRETS_READ = "secrets-read"
    POD_EXEC = "pod-exec"
    WORKLOAD_CREATE = "workload-create"
    ESCALATE = "escalate"
    BIND = "bind"
    IMPERSONATE = "impersonate"
    NODES_PROXY = "nodes-proxy"
    SA_TOKEN = "sa-token"
    CSR_APPROVAL = "csr-approval"
    WEBHOOK_CONFIG = "webhook-config"
    PERSISTENTVOLUME = "persistentvolume"
    NAMESPACE_CHANGE = "namespace-change"
    RBAC_WRITE = "rbac-write"
    WILDCARD = "wildcard"


class BindingAction(enum.StrEnum):
    """What the recommendation does with a binding."""

    REMOVE = "remove"
    NARROW = "narrow"
    RESCOPE = "rescope"
    KEEP = "keep"
    BUILTIN = "builtin"


class RuleChange(enum.StrEnum):
    """How one rule line of the proposed change differs from the current role."""

    REMOVED = "removed"
    KEPT = "kept"
    NARROWED = "narrowed"
    ADDED = "added"


_MARKS = {
    RuleChange.REMOVED: "-",
    RuleChange.KEPT: " ",
    RuleChange.NARROWED: "~",
    RuleChange.ADDED: "+",
}


@dataclass(frozen=True, slots=True)
class InputFile:
    """One input the run read: audit log or RBAC dump, with its digest and line counts."""

    path: str
    sha256: str
    lines: int
    skipped: int = 0
    kind: str = "audit"


@dataclass(frozen=True, slots=True)
class Proof:
    """Result of replaying every observed request against the recommended RBAC."""

    requests_checked: int
    changed: int
    detail: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """True when no observed request changes outcome."""
        return self.changed == 0


@dataclass(frozen=True, slots=True)
class Summary:
    """Headline numbers of the review."""

    window_start: str
    window_end: str
    window_days: int
    inputs: tuple[InputFile, ...]
    rbac_source: str
    subjects_reviewed: int
    bindings_reviewed: int
    permissions_granted: int
    permissions_unused: int
    proof: Proof
    commands: tuple[str, ...] = APPLY_COMMANDS

    @property
    def skipped_lines(self) -> int:
        """Input lines skipped as malformed, over all inputs."""
        return sum(i.skipped for i in self.inputs)

    @property
    def unused_share(self) -> str:
        """Share of granted permissions never used, as ``"62.5%"``."""
        if self.permissions_granted <= 0:
            return "0.0%"
        return f"{100.0 * self.permissions_unused / self.permissions_granted:.1f}%"


@dataclass(frozen=True, slots=True)
class MatrixRow:
    """One resource (``pods``, ``pods/log``, ``deployments.apps``, ``/healthz``) and its cells."""

    resource: str
    cells: tuple[CellState, ...]


@dataclass(frozen=True, slots=True)
class Matrix:
    """Granted versus used: rows are resources, columns verbs; ``cells`` align with ``verbs``."""

    verbs: tuple[str, ...] = ()
    rows: tuple[MatrixRow, ...] = ()
    omitted: bool = False  # left out of a large report (the data is in findings.json)

    def count(self, *states: CellState) -> int:
        """Number of cells in any of ``states``."""
        return sum(1 for r in self.rows for c in r.cells if c in states)

    @property
    def used(self) -> int:
        """Number of granted cells that were used."""
        return self.count(CellState.USED)

    @property
    def granted(self) -> int:
        """Number of granted (resource, verb) cells."""
        return sum(1 for r in self.rows for c in r.cells if c != CellState.NOT_GRANTED)


@dataclass(frozen=True, slots=True)
class RuleLine:
    """One rule of the proposed change, as a diff line."""

    change: RuleChange
    verbs: tuple[str, ...]
    api_groups: tuple[str, ...] = ()
    resources: tuple[str, ...] = ()
    resource_names: tuple[str, ...] = ()
    non_resource_urls: tuple[str, ...] = ()
    note: str = ""

    @property
    def mark(self) -> str:
        """The diff marker: ``-`` removed, ``+`` added, ``~`` narrowed, blank kept."""
        return _MARKS[self.change]

    @property
    def text(self) -> str:
        """``apps: deployments, replicasets [a] - get, list`` or ``/healthz - get``."""
        verbs = ", ".join(self.verbs)
        if self.non_resource_urls:
            return f"{', '.join(self.non_resource_urls)} - {verbs}"
        groups = ", ".join(g or "core" for g in self.api_groups)
        names = f" [{', '.join(self.resource_names)}]" if self.resource_names else ""
        return f"{groups}: {', '.join(self.resources)}{names} - {verbs}"


@dataclass(frozen=True, slots=True)
class ScopeChange:
    """A binding moved to a narrower scope (ClusterRoleBinding -> RoleBindings)."""

    before: str
    after: str
    namespaces: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class SubjectRef:
    """A subject named in a binding."""

    kind: str
    name: str
    namespace: str = ""

    @property
    def text(self) -> str:
        """``User alice``, ``Group dev``, ``ServiceAccount ns/name``."""
        if self.namespace:
            return f"{self.kind} {self.namespace}/{self.name}"
        return f"{self.kind} {self.name}"


@dataclass(frozen=True, slots=True)
class MemberUse:
    """An identity observed acting through a binding (``via`` the group that matched, if any)."""

    user: str
    requests: int
    last_used: str
    used: tuple[str, ...] = ()
    via: str = ""


@dataclass(frozen=True, slots=True)
class DeniedRequest:
    """Requests that were denied: who tried what, what they lacked, how often."""

    who: str
    operation: str
    count: int
    lacked: str = ""
    last_seen: str = ""


@dataclass(frozen=True, slots=True)
class RiskItem:
    """One dangerous grant of a binding; ``used`` False means granted but never exercised."""

    risk_class: RiskClass
    severity: Severity
    permission: str
    used: bool = False
    last_used: str = ""
    note: str = ""


@dataclass(frozen=True, slots=True)
class BindingView:
    """One reviewed binding: what it grants, what was used, and what is proposed."""

    kind: str
    name: str
    namespace: str
    role_kind: str
    role_name: str
    action: BindingAction
    subjects: tuple[SubjectRef, ...] = ()
    members: tuple[MemberUse, ...] = ()
    requests: int = 0
    last_used: str = ""
    days_active: int = 0
    days_observed: int = 0
    matrix: Matrix = Matrix()
    rules: tuple[RuleLine, ...] = ()
    scope: ScopeChange | None = None
    risks: tuple[RiskItem, ...] = ()
    denied: tuple[DeniedRequest, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def display(self) -> str:
        """``ClusterRoleBinding/name`` or ``RoleBinding/ns/name``."""
        if self.namespace:
            return f"{self.kind}/{self.namespace}/{self.name}"
        return f"{self.kind}/{self.name}"

    @property
    def role_display(self) -> str:
        """``ClusterRole/name`` or ``Role/name``."""
        return f"{self.role_kind}/{self.role_name}"


@dataclass(frozen=True, slots=True)
class SubjectView:
    """One reviewed subject: everything granted to it across bindings, and what it used."""

    kind: str
    name: str
    namespace: str = ""
    groups: tuple[str, ...] = ()
    bindings: tuple[str, ...] = ()
    requests: int = 0
    last_used: str = ""
    days_active: int = 0
    days_observed: int = 0
    matrix: Matrix = Matrix()
    clients: tuple[str, ...] = ()
    denied: tuple[DeniedRequest, ...] = ()

    @property
    def display(self) -> str:
        """``User alice`` or ``ServiceAccount ns/name``."""
        return SubjectRef(self.kind, self.name, self.namespace).text


@dataclass(frozen=True, slots=True)
class OpCount:
    """An operation (``get pods``, ``exec``) and how often it was seen."""

    operation: str
    count: int


@dataclass(frozen=True, slots=True)
class KubectlUser:
    """Who used kubectl for what, when, and from where."""

    user: str
    requests: int
    denied: int
    first_seen: str
    last_seen: str
    source_ips: tuple[str, ...] = ()
    clients: tuple[str, ...] = ()
    operations: tuple[OpCount, ...] = ()


@dataclass(frozen=True, slots=True)
class DayCount:
    """kubectl requests on one day (``YYYY-MM-DD``)."""

    day: str
    requests: int
    denied: int = 0


@dataclass(frozen=True, slots=True)
class Session:
    """An exec, attach or port-forward session; ``command`` is shown escaped, never trusted."""

    time: str
    user: str
    kind: str
    namespace: str
    pod: str
    command: str = ""
    container: str = ""
    source_ip: str = ""
    allowed: bool = True


@dataclass(frozen=True, slots=True)
class KubectlActivity:
    """kubectl usage over the window."""

    requests: int = 0
    users: tuple[KubectlUser, ...] = ()
    days: tuple[DayCount, ...] = ()
    top_denied: tuple[DeniedRequest, ...] = ()
    sessions: tuple[Session, ...] = ()


@dataclass(frozen=True, slots=True)
class Notice:
    """A warning about the inputs or the analysis (unresolved roleRef, missing audit field)."""

    kind: str
    message: str


@dataclass(frozen=True, slots=True)
class Setting:
    """A name and value pair (an option, a version, an environment fact)."""

    name: str
    value: str


@dataclass(frozen=True, slots=True)
class Appendix:
    """Everything needed to reproduce the run."""

    tool_version: str
    command_line: str
    options: tuple[Setting, ...] = ()
    environment: tuple[Setting, ...] = ()


@dataclass(frozen=True, slots=True)
class ReportView:
    """The whole report."""

    cluster: str
    summary: Summary
    bindings: tuple[BindingView, ...]
    subjects: tuple[SubjectView, ...]
    kubectl: KubectlActivity
    warnings: tuple[Notice, ...]
    appendix: Appendix
    title: str = "RBAC access review"

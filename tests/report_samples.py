"""Hand-made report view models for the report tests: a small realistic one, a hostile one
(every string field carries an attack payload) and a large one (2,000 subjects, 20,000 bindings).
"""

from __future__ import annotations

import dataclasses
import enum
import random
from typing import Any, TypeVar

from rbac_advisor.render.report_model import (
    Appendix,
    BindingAction,
    BindingView,
    CellState,
    DayCount,
    DeniedRequest,
    InputFile,
    KubectlActivity,
    KubectlUser,
    Matrix,
    MatrixRow,
    MemberUse,
    Notice,
    OpCount,
    Proof,
    ReportView,
    RiskClass,
    RiskItem,
    RuleChange,
    RuleLine,
    ScopeChange,
    Session,
    Setting,
    Severity,
    SubjectRef,
    SubjectView,
    Summary,
)

GENERATED_AT = "2024-06-01T12:00:00Z"

_CELL = {
    "U": CellState.USED,
    "N": CellState.UNUSED,
    "R": CellState.RISKY_UNUSED,
    "K": CellState.KEPT_UNOBSERVABLE,
    ".": CellState.NOT_GRANTED,
}


def matrix(verbs: str, **rows: str) -> Matrix:
    """``matrix("get list", pods="UN", secrets="R.")``: U used, N unused, R risky unused,
    K kept (unobservable), . not granted. ``__`` in keywords becomes a dot, ``_`` a slash."""
    return Matrix(
        tuple(verbs.split()),
        tuple(
            MatrixRow(name.replace("__", ".").replace("_", "/"), tuple(_CELL[c] for c in cells))
            for name, cells in rows.items()
        ),
    )


def rule(
    change: RuleChange, verbs: str, resources: str, groups: str = "", note: str = ""
) -> RuleLine:
    return RuleLine(
        change,
        tuple(verbs.split(",")),
        tuple(groups.split(",")),
        tuple(resources.split(",")),
        note=note,
    )


def _bindings() -> tuple[BindingView, ...]:
    return (
        BindingView(
            kind="ClusterRoleBinding",
            name="ops-admin",
            namespace="",
            role_kind="ClusterRole",
            role_name="ops-admin",
            action=BindingAction.RESCOPE,
            subjects=(SubjectRef("Group", "ops"),),
            members=(
                MemberUse("alice", 812, "2024-05-30", ("get pods", "list deployments.apps"), "ops"),
                MemberUse("bob", 95, "2024-05-02", ("get pods/log",), "ops"),
            ),
            requests=907,
            last_used="2024-05-30",
            days_active=41,
            days_observed=90,
            matrix=matrix(
                "get list watch create delete",
                pods="UUUNN",
                pods_log="U....",
                secrets="RRR..",
                deployments__apps="UUNNN",
            ),
            rules=(
                rule(RuleChange.REMOVED, "*", "*", "*", "wildcard never needed"),
                rule(RuleChange.ADDED, "get,list,watch", "pods,pods/log"),
                rule(RuleChange.ADDED, "get,list", "deployments", "apps"),
            ),
            scope=ScopeChange(
                "ClusterRoleBinding (cluster-wide)", "RoleBindings", ("shop", "payments")
            ),
            risks=(
                RiskItem(RiskClass.WILDCARD, Severity.HIGH, "* * (cluster-wide)"),
                RiskItem(
                    RiskClass.SECRETS_READ, Severity.HIGH, "get,list,watch secrets (cluster-wide)"
                ),
            ),
            denied=(DeniedRequest("bob", "delete pods in shop", 3, "delete pods", "2024-05-02"),),
        ),
        BindingView(
            kind="RoleBinding",
            name="ci-deployer",
            namespace="shop",
            role_kind="Role",
            role_name="deployer",
            action=BindingAction.NARROW,
            subjects=(SubjectRef("ServiceAccount", "deployer", "ci"),),
            members=(
                MemberUse(
                    "system:serviceaccount:ci:deployer",
                    4410,
                    "2024-05-31",
                    ("patch deployments.apps",),
                ),
            ),
            requests=4410,
            last_used="2024-05-31",
            days_active=88,
            days_observed=90,
            matrix=matrix(
                "get list patch create delete", deployments__apps="UUUUN", secrets="R...R"
            ),
            rules=(
                rule(RuleChange.REMOVED, "get,list,patch,create,delete", "deployments", "apps"),
                rule(
                    RuleChange.NARROWED,
                    "get,list,patch,create",
                    "deployments",
                    "apps",
                    "delete dropped",
                ),
                rule(RuleChange.REMOVED, "get,delete", "secrets"),
            ),
            risks=(
                RiskItem(
                    RiskClass.WORKLOAD_CREATE,
                    Severity.HIGH,
                    "create deployments.apps in shop",
                    True,
                    "2024-05-31",
                ),
                RiskItem(RiskClass.SECRETS_READ, Severity.HIGH, "get secrets in shop"),
            ),
        ),
        BindingView(
            kind="ClusterRoleBinding",
            name="legacy-debug",
            namespace="",
            role_kind="ClusterRole",
            role_name="debug",
            action=BindingAction.REMOVE,
            subjects=(SubjectRef("User", "carol"), SubjectRef("User", "dave")),
            days_observed=90,
            matrix=matrix("get create", pods_exec="RR", nodes_proxy="R."),
            rules=(
                rule(RuleChange.REMOVED, "get,create", "pods/exec"),
                rule(RuleChange.REMOVED, "get", "nodes/proxy"),
            ),
            risks=(
                RiskItem(RiskClass.POD_EXEC, Severity.HIGH, "create pods/exec (cluster-wide)"),
                RiskItem(RiskClass.NODES_PROXY, Severity.HIGH, "get nodes/proxy"),
            ),
            notes=("Idle for the whole window: the binding is removed (prune.yaml).",),
        ),
        BindingView(
            kind="RoleBinding",
            name="prometheus-view",
            namespace="monitoring",
            role_kind="ClusterRole",
            role_name="view",
            action=BindingAction.KEEP,
            subjects=(SubjectRef("ServiceAccount", "prometheus", "monitoring"),),
            members=(
                MemberUse(
                    "system:serviceaccount:monitoring:prometheus",
                    120000,
                    "2024-05-31",
                    ("list pods",),
                ),
            ),
            requests=120000,
            last_used="2024-05-31",
            days_active=90,
            days_observed=90,
            matrix=matrix(
                "get list watch", pods="UUU", services="UUU", endpoints="UUU", configmaps="KKK"
            ),
        ),
        BindingView(
            kind="ClusterRoleBinding",
            name="system:basic-user",
            namespace="",
            role_kind="ClusterRole",
            role_name="system:basic-user",
            action=BindingAction.BUILTIN,
            subjects=(SubjectRef("Group", "system:authenticated"),),
            requests=52,
            last_used="2024-05-29",
            days_active=12,
            days_observed=90,
            matrix=matrix("create", selfsubjectaccessreviews__authorization__k8s__io="U"),
            rules=(
                rule(
                    RuleChange.KEPT,
                    "create",
                    "selfsubjectaccessreviews",
                    "authorization.k8s.io",
                ),
            ),
            notes=("Built-in object: never changed.",),
        ),
    )


def _subjects() -> tuple[SubjectView, ...]:
    return (
        SubjectView(
            "User",
            "alice",
            groups=("ops", "system:authenticated"),
            bindings=("ClusterRoleBinding/ops-admin", "ClusterRoleBinding/system:basic-user"),
            requests=812,
            last_used="2024-05-30",
            days_active=40,
            days_observed=90,
            matrix=matrix("get list watch", pods="UUU", secrets="RRR"),
            clients=("kubectl/v1.30.1 (linux/amd64) kubernetes/7b7e9e2",),
        ),
        SubjectView(
            "User",
            "bob",
            groups=("ops",),
            bindings=("ClusterRoleBinding/ops-admin",),
            requests=95,
            last_used="2024-05-02",
            days_active=3,
            days_observed=90,
            matrix=matrix("get delete", pods_log="U.", pods="NN"),
            denied=(DeniedRequest("bob", "delete pods in shop", 3, "delete pods", "2024-05-02"),),
        ),
        SubjectView(
            "User",
            "carol",
            bindings=("ClusterRoleBinding/legacy-debug",),
            days_observed=90,
            matrix=matrix("get create", pods_exec="RR"),
        ),
        SubjectView(
            "ServiceAccount",
            "deployer",
            "ci",
            bindings=("RoleBinding/shop/ci-deployer",),
            requests=4410,
            last_used="2024-05-31",
            days_active=88,
            days_observed=90,
            matrix=matrix("patch delete", deployments__apps="UN"),
        ),
        SubjectView(
            "ServiceAccount",
            "prometheus",
            "monitoring",
            bindings=("RoleBinding/monitoring/prometheus-view",),
            requests=120000,
            last_used="2024-05-31",
            days_active=90,
            days_observed=90,
            matrix=matrix("get list", pods="UU"),
        ),
    )


def _kubectl() -> KubectlActivity:
    days = tuple(DayCount(f"2024-05-{d:02d}", (d * 37) % 90 + 5, (d * 7) % 6) for d in range(1, 31))
    return KubectlActivity(
        requests=sum(d.requests for d in days),
        users=(
            KubectlUser(
                "alice",
                812,
                4,
                "2024-03-03",
                "2024-05-30",
                ("10.0.0.12", "10.0.0.15"),
                ("kubectl/v1.30.1 (linux/amd64) kubernetes/7b7e9e2",),
                (OpCount("get pods", 500), OpCount("exec", 3), OpCount("logs", 120)),
            ),
            KubectlUser(
                "bob",
                95,
                3,
                "2024-04-28",
                "2024-05-02",
                ("192.168.4.7",),
                ("kubectl/v1.29.0 (darwin/arm64) kubernetes/3f7a50f",),
                (OpCount("logs", 90), OpCount("delete pods", 3)),
            ),
        ),
        days=days,
        top_denied=(
            DeniedRequest("bob", "delete pods", 3, "delete pods in shop", "2024-05-02"),
            DeniedRequest("alice", "get secrets", 4, "get secrets in kube-system", "2024-05-20"),
        ),
        sessions=(
            Session(
                "2024-05-20T10:01:02Z",
                "alice",
                "exec",
                "shop",
                "web-7d9f",
                "sh -c <redacted>",
                "web",
                "10.0.0.12",
            ),
            Session(
                "2024-05-21T08:00:00Z", "alice", "port-forward", "shop", "db-0", "", "", "10.0.0.12"
            ),
            Session(
                "2024-05-22T09:30:00Z",
                "bob",
                "attach",
                "shop",
                "web-7d9f",
                "",
                "web",
                "192.168.4.7",
                False,
            ),
        ),
    )


def sample_view(skipped: int = 2, changed: int = 0) -> ReportView:
    """A small, realistic report."""
    return ReportView(
        cluster="prod-eu1",
        summary=Summary(
            window_start="2024-03-03",
            window_end="2024-05-31",
            window_days=90,
            inputs=(
                InputFile("/var/log/kubernetes/audit/audit.log", "ab" * 32, 184230, skipped),
                InputFile("/var/log/kubernetes/audit/audit-2024-04.log.gz", "cd" * 32, 991002, 0),
                InputFile("rbac-dump.yaml", "ef" * 32, 5120, 0, "rbac"),
            ),
            rbac_source="dump rbac-dump.yaml",
            subjects_reviewed=5,
            bindings_reviewed=5,
            permissions_granted=48,
            permissions_unused=30,
            proof=Proof(
                125269,
                changed,
                tuple(f"get pods in shop as alice (request {i})" for i in range(changed)),
            ),
        ),
        bindings=_bindings(),
        subjects=_subjects(),
        kubectl=_kubectl(),
        warnings=(
            Notice("unresolved-roleref", 'RoleBinding shop/old-ci refers to missing Role "ci-old"'),
            Notice(
                "aggregation-drift",
                "ClusterRole monitoring-view differs from its aggregation selectors",
            ),
            Notice(
                "missing-audit-field",
                "GKE audit entries carry no user groups; "
                "group bindings are attributed by evaluation",
            ),
        ),
        appendix=Appendix(
            tool_version="0.1.0",
            command_line=(
                "rbac-advisor analyze --audit /var/log/kubernetes/audit --rbac rbac-dump.yaml"
                " --out reports/"
            ),
            options=(Setting("skip_malformed", "true"), Setting("window_days", "90")),
            environment=(Setting("python", "3.11.9"),),
        ),
    )


T = TypeVar("T")


def map_strings(value: T, fn: Any) -> T:
    """Apply ``fn`` to every plain string inside a view (enum members are left alone)."""
    if isinstance(value, enum.Enum):
        return value
    if isinstance(value, str):
        return fn(value)  # type: ignore[no-any-return]
    if isinstance(value, tuple):
        return tuple(map_strings(v, fn) for v in value)  # type: ignore[return-value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        changes = {
            f.name: map_strings(getattr(value, f.name), fn) for f in dataclasses.fields(value)
        }
        return dataclasses.replace(value, **changes)  # type: ignore[return-value]
    return value


def hostile_view(payload: str) -> ReportView:
    """The sample report with ``payload`` appended to every string field."""
    return map_strings(sample_view(), lambda s: s + payload)


VERBS = ("get", "list", "watch", "create", "update", "patch", "delete")
RESOURCES = (
    "pods",
    "pods/log",
    "pods/exec",
    "services",
    "configmaps",
    "secrets",
    "deployments.apps",
    "statefulsets.apps",
    "jobs.batch",
    "ingresses.networking.k8s.io",
    "events",
    "endpoints",
)
RISKY = {"secrets", "pods/exec"}


def _role(rnd: random.Random, heavy: bool) -> tuple[tuple[str, ...], tuple[str, ...]]:
    n_verbs, n_res = ((2, 5), (2, 6)) if heavy else ((2, 4), (1, 3))
    verbs = tuple(sorted(rnd.sample(VERBS, rnd.randint(*n_verbs)), key=VERBS.index))
    return verbs, tuple(sorted(rnd.sample(RESOURCES, rnd.randint(*n_res))))


def _usage(
    rnd: random.Random, verbs: tuple[str, ...], resources: tuple[str, ...], action: BindingAction
) -> tuple[Matrix, set[str]]:
    """Granted cells come from the role. Kept and built-in bindings used everything, narrowed
    ones some verbs on some resources, removed ones nothing. Returns the matrix and the
    resources used."""
    if action in (BindingAction.KEEP, BindingAction.BUILTIN):
        used_res, used_verbs = set(resources), set(verbs)
    elif action == BindingAction.REMOVE:
        used_res, used_verbs = set(), set()
    else:
        used_res = set(rnd.sample(resources, rnd.randint(1, len(resources))))
        used_verbs = set(rnd.sample(verbs, rnd.randint(1, len(verbs))))
    rows = []
    for r in resources:
        cells = []
        for v in verbs:
            if r in used_res and v in used_verbs:
                cells.append(CellState.USED)
            elif r in RISKY:
                cells.append(CellState.RISKY_UNUSED)
            else:
                cells.append(CellState.UNUSED)
        rows.append(MatrixRow(r, tuple(cells)))
    return Matrix(verbs, tuple(rows)), used_res


_MIX = (
    (BindingAction.KEEP, 0.35),
    (BindingAction.NARROW, 0.35),
    (BindingAction.REMOVE, 0.20),
    (BindingAction.BUILTIN, 0.10),
)


def _rules(
    action: BindingAction, verbs: tuple[str, ...], resources: tuple[str, ...]
) -> tuple[RuleLine, ...]:
    if action in (BindingAction.KEEP, BindingAction.BUILTIN):
        return (rule(RuleChange.KEPT, ",".join(verbs), ",".join(resources)),)
    if action == BindingAction.REMOVE:
        return (rule(RuleChange.REMOVED, ",".join(verbs), ",".join(resources)),)
    return (
        rule(RuleChange.KEPT, ",".join(verbs[:2]), resources[0]),
        rule(
            RuleChange.REMOVED, ",".join(verbs[2:] or verbs), ",".join(resources[1:] or resources)
        ),
    )


def large_view(
    n_subjects: int = 2000, n_bindings: int = 20000, seed: int = 7, heavy: bool = False
) -> ReportView:
    """A large cluster: bindings share 300 roles of 2-4 verbs x 1-3 resources; 35% kept (fully
    used), 35% narrowed, 20% removed (idle), 10% built-in; every tenth is cluster-wide.
    ``heavy``: every binding narrowed, roles of 2-5 verbs x 2-6 resources (a worst case)."""
    rnd = random.Random(seed)
    users = [f"user-{i:04d}@example.com" for i in range(n_subjects)]
    namespaces = [f"team-{i:03d}" for i in range(400)]
    roles = [_role(rnd, heavy) for _ in range(300)]
    actions, weights = zip(*_MIX, strict=True)
    bindings = []
    for i in range(n_bindings):
        ns = rnd.choice(namespaces) if i % 10 else ""
        role = i % len(roles)
        verbs, resources = roles[role]
        action = BindingAction.NARROW if heavy else rnd.choices(actions, weights)[0]
        mat, used_res = _usage(rnd, verbs, resources, action)
        who = rnd.choice(users)
        used = action != BindingAction.REMOVE
        members = (
            (MemberUse(who, rnd.randint(1, 5000), "2024-05-20", ("get pods",)),) if used else ()
        )
        bindings.append(
            BindingView(
                kind="RoleBinding" if ns else "ClusterRoleBinding",
                name=f"binding-{i:05d}",
                namespace=ns,
                role_kind="ClusterRole",
                role_name=f"role-{role:03d}",
                action=action,
                subjects=(SubjectRef("User", who),),
                members=members,
                requests=members[0].requests if members else 0,
                last_used="2024-05-20" if used else "",
                days_active=rnd.randint(1, 90) if used else 0,
                days_observed=90,
                matrix=mat,
                rules=_rules(action, verbs, resources),
                risks=tuple(
                    RiskItem(
                        RiskClass.SECRETS_READ if r == "secrets" else RiskClass.POD_EXEC,
                        Severity.HIGH,
                        f"{r} in {ns or 'all namespaces'}",
                        r in used_res,
                        "2024-05-20" if r in used_res else "",
                    )
                    for r in sorted(RISKY.intersection(resources))
                ),
            )
        )
    by_user: dict[str, list[str]] = {u: [] for u in users}
    for b in bindings:
        by_user[b.subjects[0].name].append(b.display)
    subjects = tuple(
        SubjectView(
            "User",
            u,
            groups=("system:authenticated",),
            bindings=tuple(by_user[u]),
            requests=rnd.randint(0, 10000),
            last_used="2024-05-20",
            days_active=rnd.randint(0, 90),
            days_observed=90,
            matrix=_usage(rnd, *roles[i % len(roles)], BindingAction.NARROW)[0],
        )
        for i, u in enumerate(users)
    )
    base = sample_view()
    return dataclasses.replace(
        base,
        cluster="big",
        summary=dataclasses.replace(
            base.summary, subjects_reviewed=n_subjects, bindings_reviewed=n_bindings
        ),
        bindings=tuple(bindings),
        subjects=subjects,
    )

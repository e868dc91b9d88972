"""Findings + usage -> the report's view model. Pure: no I/O.

Everything the template shows is decided here; the renderer only lays it out.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from rbac_advisor.analysis import Result
from rbac_advisor.audit.timestamps import format_time
from rbac_advisor.audit.useragent import name_of
from rbac_advisor.authorizer import Authorizer, applies_to
from rbac_advisor.diff import AtomReport, BindingFinding, Denied
from rbac_advisor.events import Decision
from rbac_advisor.rbac import (
    Access,
    Binding,
    BindingKey,
    BindingKind,
    Identity,
    PolicyRule,
    Role,
    Subject,
)
from rbac_advisor.render import report_model as vm
from rbac_advisor.risk import CLASSES
from rbac_advisor.tighten import Change
from rbac_advisor.usage import DAY, Usage, cap_ips, earliest

VERB_ORDER = (
    "get",
    "list",
    "watch",
    "create",
    "update",
    "patch",
    "delete",
    "deletecollection",
    "impersonate",
    "proxy",
    "bind",
    "escalate",
    "approve",
    "sign",
    "use",
    "post",
    "put",
    "head",
    "options",
    "*",
)
MAX_MEMBER_OPS = 12
DETAIL_LIMIT = 1000  # bindings and subjects with full details in the HTML; see _trim
MAX_OPS = 8  # most frequent kubectl operations listed per identity
MAX_DENIED = 5  # per binding and subject in the HTML; findings.json has them all


def _ts(t: float | None) -> str:
    if not t:  # None, or 0: no record of it gave a time
        return ""
    return format_time(t)[:16].replace("T", " ") + " UTC"


def _day(d: int) -> str:
    return format_time(d * DAY)[:10]


def _row_label(atom: PolicyRule) -> str:
    if atom.non_resource_urls:
        return atom.non_resource_urls[0]
    g, r = atom.api_groups[0], atom.resources[0]
    label = f"{r}.{g}" if g else r
    if atom.resource_names:
        label += f" [{atom.resource_names[0]}]"
    return label


def _verb_key(v: str) -> tuple[int, str]:
    return (VERB_ORDER.index(v) if v in VERB_ORDER else len(VERB_ORDER) - 1, v)


def _risk_item(a: AtomReport, name: str) -> vm.RiskItem | None:
    try:
        cls = vm.RiskClass(name)
    except ValueError:
        return None
    sev = {3: vm.Severity.HIGH, 2: vm.Severity.MEDIUM}.get(
        int(CLASSES[name].severity), vm.Severity.LOW
    )
    return vm.RiskItem(cls, sev, _perm(a.atom), a.used, _ts(a.last), CLASSES[name].why)


def _perm(atom: PolicyRule) -> str:
    return f"{', '.join(atom.verbs)} {_row_label(atom)}"


def matrix(atoms: Iterable[AtomReport], kept: frozenset[PolicyRule]) -> vm.Matrix:
    """Resources x verbs with the strongest state per cell."""
    cells: dict[str, dict[str, vm.CellState]] = defaultdict(dict)
    rank = {
        vm.CellState.USED: 4,
        vm.CellState.KEPT_UNOBSERVABLE: 3,
        vm.CellState.RISKY_UNUSED: 2,
        vm.CellState.UNUSED: 1,
    }
    for a in atoms:
        verb = a.atom.verbs[0]
        row = _row_label(a.atom)
        if a.used:
            state = vm.CellState.USED
        elif a.atom in kept:
            state = vm.CellState.KEPT_UNOBSERVABLE
        elif a.risks:
            state = vm.CellState.RISKY_UNUSED
        else:
            state = vm.CellState.UNUSED
        prev = cells[row].get(verb)
        if prev is None or rank[state] > rank[prev]:
            cells[row][verb] = state
    verbs = tuple(sorted({v for row in cells.values() for v in row}, key=_verb_key))
    rows = tuple(
        vm.MatrixRow(r, tuple(cells[r].get(v, vm.CellState.NOT_GRANTED) for v in verbs))
        for r in sorted(cells)
    )
    return vm.Matrix(verbs, rows)


def _rule_line(rule: PolicyRule, change: vm.RuleChange, note: str = "") -> vm.RuleLine:
    return vm.RuleLine(
        change,
        rule.verbs,
        rule.api_groups,
        rule.resources,
        rule.resource_names,
        rule.non_resource_urls,
        note,
    )


def _rule_lines(f: BindingFinding, change: Change) -> tuple[vm.RuleLine, ...]:
    if change.action in ("unchanged", "report-only"):
        return tuple(_rule_line(rr.rule, vm.RuleChange.KEPT) for rr in f.rules)
    lines = []
    for rr in f.rules:
        used = sum(a.used for a in rr.atoms)
        if change.action == "remove" or not used:
            lines.append(_rule_line(rr.rule, vm.RuleChange.REMOVED))
        elif used == len(rr.atoms):
            lines.append(_rule_line(rr.rule, vm.RuleChange.KEPT, "every permission used"))
        else:
            lines.append(
                _rule_line(rr.rule, vm.RuleChange.NARROWED, f"{used} of {len(rr.atoms)} used")
            )
    for obj in change.creates:
        if isinstance(obj, Role):
            where = f"{obj.kind} {obj.name}" + (f" in {obj.namespace}" if obj.namespace else "")
            lines.extend(_rule_line(r, vm.RuleChange.ADDED, where) for r in obj.rules)
    return tuple(lines)


def _action(f: BindingFinding, change: Change) -> vm.BindingAction:
    if change.action == "report-only":
        # left as it is: built-in or not reviewable, or kept on purpose (see its notes)
        return vm.BindingAction.KEEP if f.reviewable else vm.BindingAction.BUILTIN
    if change.action == "remove":
        return vm.BindingAction.REMOVE
    if change.action == "unchanged":
        return vm.BindingAction.KEEP
    if _scope(f, change) is not None:
        return vm.BindingAction.RESCOPE
    return vm.BindingAction.NARROW


def _scope(f: BindingFinding, change: Change) -> vm.ScopeChange | None:
    if f.binding.kind != BindingKind.CLUSTER_ROLE_BINDING:
        return None
    namespaces = tuple(
        sorted({o.namespace for o in change.creates if isinstance(o, Binding) and o.namespace})
    )
    if not namespaces:
        return None
    keeps_crb = any(
        isinstance(o, Binding) and o.kind == BindingKind.CLUSTER_ROLE_BINDING
        for o in change.creates
    )
    after = f"RoleBindings in {len(namespaces)} namespace(s)"
    if keeps_crb:
        after += " + a ClusterRoleBinding for cluster-wide use"
    return vm.ScopeChange("ClusterRoleBinding (every namespace)", after, namespaces)


def _subject_ref(s: Subject) -> vm.SubjectRef:
    return vm.SubjectRef(s.kind, s.name, s.namespace)


def _members(f: BindingFinding) -> tuple[vm.MemberUse, ...]:
    per: dict[str, list[Any]] = defaultdict(list)
    for u in f.uses:
        per[u.identity.user].append(u)
    out = []
    for user in sorted(per):
        us = per[user]
        ops = sorted({u.access.display() for u in us})
        via = next((u.subject.name for u in us if u.subject.kind == "Group"), "")
        out.append(
            vm.MemberUse(
                user,
                sum(u.count for u in us),
                _ts(max(u.last for u in us)),
                tuple(ops[:MAX_MEMBER_OPS])
                + ((f"... {len(ops) - MAX_MEMBER_OPS} more",) if len(ops) > MAX_MEMBER_OPS else ()),
                via,
            )
        )
    return tuple(out)


def denied_by_binding(
    authz: Authorizer, denied: Iterable[Denied]
) -> dict[BindingKey, tuple[vm.DeniedRequest, ...]]:
    """Denied requests of each binding's subjects, in the binding's scope (indexed lookup)."""
    out: dict[BindingKey, list[vm.DeniedRequest]] = defaultdict(list)
    for d in denied:
        ns = d.access.namespace if d.access.resource_request else ""
        for b in authz.bindings_for(d.identity, ns):
            # Built-in bindings to everyone (system:authenticated) would list every denial.
            if not b.builtin and applies_to(d.identity, b) is not None:
                out[b.key].append(
                    vm.DeniedRequest(
                        d.identity.user, d.access.display(), d.count, _lacked(d.access), _ts(d.last)
                    )
                )
    return {
        k: tuple(sorted(v, key=lambda x: (-x.count, x.who, x.operation))[:MAX_DENIED])
        for k, v in out.items()
    }


def _lacked(a: Access) -> str:
    if not a.resource_request:
        return f"{a.verb} on path {a.path}"
    where = f"in namespace {a.namespace}" if a.namespace else "at cluster scope"
    return f'{a.verb} on "{a.combined_resource}" in API group "{a.api_group}" {where}'


def _notes(f: BindingFinding, change: Change) -> tuple[str, ...]:
    notes = []
    if f.not_reviewable_why:
        notes.append(f.not_reviewable_why)
    if change.summary and (change.action != "report-only" or f.reviewable):
        notes.append(change.summary)
    if change.kept_unobservable:
        notes.append(
            f"{len(change.kept_unobservable)} permission(s) an audit log cannot show being used "
            "(verbs such as bind, escalate, approve; kubelet and /metrics permissions checked "
            "by delegated authorization) were kept: review them by hand"
        )
    if change.dropped_wildcard_unobservable:
        notes.append(
            "a '*' verb was narrowed to the verbs observed; it also granted verbs an audit log "
            "cannot show (bind, escalate, approve, ...): check none is needed"
        )
    by_reason = sum(u.count for u in f.uses if u.by_reason)
    total = sum(u.count for u in f.uses)
    if total:
        notes.append(
            f"{by_reason} of {total} request(s) attributed by the audit reason annotation, "
            "the rest by evaluation (tightest allowing binding)"
        )
    idle = f.idle_subjects
    if idle and f.uses:
        notes.append("idle subjects: " + ", ".join(_subject_ref(s).text for s in idle))
    return tuple(notes)


def binding_view(
    f: BindingFinding,
    change: Change,
    denied: tuple[vm.DeniedRequest, ...],
    days_observed: int,
) -> vm.BindingView:
    """One binding's section of the report."""
    b = f.binding
    atoms = [a for rr in f.rules for a in rr.atoms]
    kept = frozenset(change.kept_unobservable)
    risks: list[vm.RiskItem] = []
    for a in atoms:
        for name in a.risks:
            item = _risk_item(a, name)
            if item is not None:
                risks.append(item)
    days = frozenset().union(*(u.days for u in f.uses)) if f.uses else frozenset()
    return vm.BindingView(
        kind=str(b.kind),
        name=b.name,
        namespace=b.namespace,
        role_kind=str(b.role_ref.kind),
        role_name=b.role_ref.name,
        action=_action(f, change),
        subjects=tuple(_subject_ref(s) for s in b.subjects),
        members=_members(f),
        requests=sum(u.count for u in f.uses),
        last_used=_ts(max((u.last for u in f.uses), default=None)),
        days_active=len(days),
        days_observed=days_observed,
        matrix=matrix(atoms, kept),
        rules=_rule_lines(f, change),
        scope=_scope(f, change),
        risks=tuple(risks),
        denied=denied,
        notes=_notes(f, change),
    )


def _subject_kind(user: str) -> tuple[str, str, str]:
    sa = Identity(user).service_account
    return ("ServiceAccount", sa[1], sa[0]) if sa is not None else ("User", user, "")


def subject_views(result: Result, days_observed: int) -> tuple[vm.SubjectView, ...]:
    """Per identity: what it used through which bindings, and what it was denied."""
    per: dict[str, dict[str, Any]] = defaultdict(
        lambda: {
            "groups": set(),
            "bindings": set(),
            "requests": 0,
            "last": None,
            "days": set(),
            "atoms": [],
            "tools": set(),
            "denied": [],
        }
    )
    for f in result.findings.bindings:
        for u in f.uses:
            d = per[u.identity.user]
            d["groups"].update(u.identity.groups)
            d["bindings"].add(f.binding.key.display())
            d["requests"] += u.count
            d["last"] = max(d["last"] or 0.0, u.last)
            d["days"].update(u.days)
            d["tools"].update(u.tools)
            d["atoms"].append(u.access)
    for dn in result.findings.denied:
        d = per[dn.identity.user]
        d["groups"].update(dn.identity.groups)
        d["denied"].append(
            vm.DeniedRequest(
                dn.identity.user, dn.access.display(), dn.count, _lacked(dn.access), _ts(dn.last)
            )
        )
    out = []
    for user in sorted(per):
        d = per[user]
        kind, name, ns = _subject_kind(user)
        cells: dict[str, set[str]] = defaultdict(set)
        for a in d["atoms"]:
            cells[a.target].add(a.verb)
        verbs = tuple(sorted({v for s in cells.values() for v in s}, key=_verb_key))
        m = vm.Matrix(
            verbs,
            tuple(
                vm.MatrixRow(
                    r,
                    tuple(
                        vm.CellState.USED if v in cells[r] else vm.CellState.NOT_GRANTED
                        for v in verbs
                    ),
                )
                for r in sorted(cells)
            ),
        )
        out.append(
            vm.SubjectView(
                kind=kind,
                name=name,
                namespace=ns,
                groups=tuple(sorted(d["groups"])),
                bindings=tuple(sorted(d["bindings"])),
                requests=d["requests"],
                last_used=_ts(d["last"]),
                days_active=len(d["days"]),
                days_observed=days_observed,
                matrix=m,
                clients=tuple(sorted(d["tools"])),
                denied=tuple(
                    sorted(d["denied"], key=lambda x: (-x.count, x.operation))[:MAX_DENIED]
                ),
            )
        )
    return tuple(out)


def kubectl_activity(usage: Usage) -> vm.KubectlActivity:
    """Who used kubectl for what, when, from where; per day; most denied; sessions."""
    users: dict[str, dict[str, Any]] = defaultdict(
        lambda: {"requests": 0, "denied": 0, "first": None, "last": None, "ops": defaultdict(int)}
    )
    denied_ops: dict[tuple[str, str], int] = defaultdict(int)
    denied_info: dict[tuple[str, str], tuple[str, float]] = {}
    denied_days: dict[int, int] = defaultdict(int)
    for key, st in usage.entries.items():
        if name_of(key.tool) != "kubectl":
            continue
        d = users[key.identity.user]
        d["requests"] += st.count
        d["first"] = st.first if d["first"] is None else earliest(d["first"], st.first)
        d["last"] = st.last if d["last"] is None else max(d["last"], st.last)
        d["ops"][f"{key.access.verb} {key.access.target}"] += st.count
        if key.decision == Decision.FORBID:
            d["denied"] += st.count
            dk = (key.identity.user, key.access.display())
            denied_ops[dk] += st.count
            last = max(st.last, denied_info[dk][1]) if dk in denied_info else st.last
            denied_info[dk] = (_lacked(key.access), last)
            for day in st.days:
                denied_days[day] += 1
    days: dict[int, int] = defaultdict(int)
    clients: dict[str, set[str]] = defaultdict(set)
    ips: dict[str, set[str]] = defaultdict(set)
    for (user, tool, day), n in usage.activity.items():
        if name_of(tool) == "kubectl":
            if day:  # day 0: requests whose records gave no time
                days[day] += n
            clients[user].add(tool)
    for (user, tool), seen in usage.client_ips.items():
        if name_of(tool) == "kubectl":
            ips[user].update(seen)
    kusers = tuple(
        vm.KubectlUser(
            user=u,
            requests=d["requests"],
            denied=d["denied"],
            first_seen=_ts(d["first"]),
            last_seen=_ts(d["last"]),
            source_ips=tuple(sorted(cap_ips(ips[u]))),
            clients=tuple(sorted(clients[u])) or ("kubectl",),
            operations=tuple(
                vm.OpCount(o, n)
                for o, n in sorted(d["ops"].items(), key=lambda x: (-x[1], x[0]))[:MAX_OPS]
            ),
        )
        for u, d in sorted(users.items())
    )
    top = sorted(denied_ops.items(), key=lambda x: (-x[1], x[0]))[:MAX_DENIED]
    sessions = tuple(
        vm.Session(
            time=_ts(s.time),
            user=s.user,
            kind=s.resource.partition("/")[2] or s.resource,
            namespace=s.namespace,
            pod=s.name,
            command=s.uri,
            source_ip=s.source_ip,
            allowed=s.decision != Decision.FORBID,
        )
        for s in usage.sessions
    )
    return vm.KubectlActivity(
        requests=sum(d["requests"] for d in users.values()),
        users=kusers,
        days=tuple(vm.DayCount(_day(d), n, denied_days.get(d, 0)) for d, n in sorted(days.items())),
        top_denied=tuple(
            vm.DeniedRequest(u, o, n, denied_info[(u, o)][0], _ts(denied_info[(u, o)][1]))
            for (u, o), n in top
        ),
        sessions=sessions,
    )


def window_days(usage: Usage) -> int:
    """Calendar days the observation window touches (0 when empty)."""
    if usage.start is None or usage.end is None:
        return 0
    return int(usage.end // DAY) - int(usage.start // DAY) + 1


def _rank(b: vm.BindingView) -> tuple[int, int, str]:
    risky = sum(1 for r in b.risks if not r.used and r.severity is vm.Severity.HIGH)
    return (-risky, -len(b.risks), b.display)


def _trim(bindings: tuple[vm.BindingView, ...]) -> tuple[vm.BindingView, ...]:
    """Past DETAIL_LIMIT bindings (ranked by unused high-risk grants), keep the summary line.

    A large report stays small and fast; findings.json keeps every detail.
    """
    if len(bindings) <= DETAIL_LIMIT:
        return bindings
    keep = {id(b) for b in sorted(bindings, key=_rank)[:DETAIL_LIMIT]}
    return tuple(
        b
        if id(b) in keep
        else replace(
            b,
            matrix=vm.Matrix(omitted=True),
            members=(),
            denied=(),
            rules=(),
            notes=(),
        )
        for b in bindings
    )


def _trim_subjects(subjects: tuple[vm.SubjectView, ...]) -> tuple[vm.SubjectView, ...]:
    """Past DETAIL_LIMIT subjects (most active first), keep the headline numbers only."""
    if len(subjects) <= DETAIL_LIMIT:
        return subjects
    ranked = sorted(subjects, key=lambda s: (-s.requests, -len(s.denied), s.display))
    keep = {id(s) for s in ranked[:DETAIL_LIMIT]}
    return tuple(
        s if id(s) in keep else replace(s, matrix=vm.Matrix(omitted=True), denied=())
        for s in subjects
    )


def _setting(value: object) -> str:
    """Option values as a user would type them: ``true``, ``false``, ``-`` for unset."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def build_view(result: Result, usage: Usage, meta: dict[str, Any], command: str) -> vm.ReportView:
    """The whole report view for one review run."""
    days = window_days(usage)
    changes = {c.binding: c for c in result.plan.changes}
    shown = [f for f in result.findings.bindings if f.reviewable or f.uses]
    denied = denied_by_binding(Authorizer(result.findings.snapshot), result.findings.denied)
    bindings = _trim(
        tuple(
            binding_view(f, changes[f.binding.key], denied.get(f.binding.key, ()), days)
            for f in shown
        )
    )
    reviewable = [f for f in result.findings.bindings if f.reviewable]
    atoms = [a for f in reviewable for rr in f.rules for a in rr.atoms]
    subjects = {s for f in reviewable for s in f.binding.subjects}
    inputs = tuple(
        vm.InputFile(s.path, s.sha256, s.lines, s.skipped, f"audit ({s.format})")
        for s in usage.sources
    )
    notices = [vm.Notice("rbac", w) for w in result.findings.warnings]
    notices += [vm.Notice("plan", n) for n in result.plan.notes]
    for s in usage.sources:
        if s.missing_fields:
            notices.append(
                vm.Notice(
                    "audit",
                    f"{s.path}: some records lack {', '.join(s.missing_fields)}",
                )
            )
        if s.skipped:
            notices.append(vm.Notice("audit", f"{s.path}: {s.skipped} malformed line(s) skipped"))
    if len(shown) > DETAIL_LIMIT:
        notices.append(
            vm.Notice(
                "report",
                f"{len(shown) - DETAIL_LIMIT} of {len(shown)} bindings are listed without their "
                f"rule diff and matrix (the {DETAIL_LIMIT} with the most unused high-risk grants "
                "are complete); findings.json has every detail",
            )
        )
    if result.findings.unexplained:
        n = sum(o.count for o in result.findings.unexplained)
        notices.append(
            vm.Notice(
                "audit",
                f"{n} request(s) logged as allowed are not allowed by this RBAC (another "
                "authorizer such as Node decided, or RBAC changed during the window); they are "
                "left out of the recommendation",
            )
        )
    if result.findings.privileged_requests:
        notices.append(
            vm.Notice(
                "audit",
                f"{result.findings.privileged_requests} request(s) from system:masters members "
                "were allowed before RBAC and exercise no binding",
            )
        )
    summary = vm.Summary(
        window_start=_ts(usage.start),
        window_end=_ts(usage.end),
        window_days=days,
        inputs=inputs,
        rbac_source=str(meta.get("rbacSource", "")),
        subjects_reviewed=len(subjects),
        bindings_reviewed=len(reviewable),
        permissions_granted=len(atoms),
        permissions_unused=sum(1 for a in atoms if not a.used),
        proof=vm.Proof(result.proof.checked, len(result.proof.broken)),
    )
    options = tuple(vm.Setting(k, _setting(v)) for k, v in sorted(meta.get("options", {}).items()))
    appendix = vm.Appendix(
        tool_version=str(meta.get("tool", {}).get("version", "")),
        command_line=command,
        options=options,
        environment=(
            vm.Setting("RBAC source", str(meta.get("rbacSource", ""))),
            vm.Setting("distinct requests", str(usage.requests)),
            vm.Setting("observation window", f"{_ts(usage.start)} - {_ts(usage.end)}"),
        ),
    )
    return vm.ReportView(
        cluster=str(meta.get("rbacSource", "")),
        summary=summary,
        bindings=bindings,
        subjects=_trim_subjects(subject_views(result, days)),
        kubectl=kubectl_activity(usage),
        warnings=tuple(notices),
        appendix=appendix,
    )

"""Findings, plan and proof -> ``findings.json`` text (schema: docs/findings-schema.md). Pure."""

from __future__ import annotations

import json
from typing import Any

from rbac_advisor.analysis import Result
from rbac_advisor.diff import BindingFinding, Use
from rbac_advisor.manifests import rule_to_manifest, to_manifest
from rbac_advisor.rbac import Access, Identity, PolicyRule, Subject
from rbac_advisor.usage_report import iso

SCHEMA_VERSION = 1


def access_dict(a: Access) -> dict[str, Any]:
    """Authorizer attributes as JSON."""
    if not a.resource_request:
        return {"verb": a.verb, "path": a.path}
    return {
        "verb": a.verb,
        "apiGroup": a.api_group,
        "resource": a.combined_resource,
        "namespace": a.namespace,
        "name": a.name,
    }


def identity_dict(i: Identity) -> dict[str, Any]:
    """A user and its groups as JSON."""
    return {"user": i.user, "groups": list(i.groups)}


def subject_dict(s: Subject) -> dict[str, Any]:
    """A binding subject as JSON."""
    out: dict[str, Any] = {"kind": s.kind, "name": s.name}
    if s.namespace:
        out["namespace"] = s.namespace
    return out


def _rule(r: PolicyRule) -> dict[str, Any]:
    return dict(rule_to_manifest(r))


def _use(u: Use) -> dict[str, Any]:
    return {
        "identity": identity_dict(u.identity),
        "access": access_dict(u.access),
        "subject": subject_dict(u.subject),
        "count": u.count,
        "firstSeen": iso(u.first),
        "lastSeen": iso(u.last),
        "daysActive": len(u.days),
        "attributedBy": "reason" if u.by_reason else "evaluation",
        "tools": sorted(u.tools),
    }


def _binding(f: BindingFinding, change: dict[str, Any]) -> dict[str, Any]:
    b = f.binding
    unused = [
        {
            "rule": rr.index,
            "permission": _rule(a.atom),
            "risks": list(a.risks),
            "observable": a.observable,
        }
        for rr in f.rules
        for a in rr.atoms
        if not a.used
    ]
    used = [
        {
            "rule": rr.index,
            "permission": _rule(a.atom),
            "count": a.count,
            "lastSeen": iso(a.last),
            "covered": list(a.covered),
        }
        for rr in f.rules
        for a in rr.atoms
        if a.used
    ]
    return {
        "kind": str(b.kind),
        "name": b.name,
        "namespace": b.namespace,
        "roleRef": {"kind": str(b.role_ref.kind), "name": b.role_ref.name},
        "reviewable": f.reviewable,
        "notReviewableBecause": f.not_reviewable_why or None,
        "idle": f.idle,
        "subjects": [
            {
                **subject_dict(s.subject),
                "requests": s.requests,
                "lastSeen": iso(s.last),
                "users": list(s.users),
            }
            for s in f.subjects
        ],
        "used": used,
        "unused": unused,
        "uses": [_use(u) for u in f.uses],
        "change": change,
    }


def render(result: Result, meta: dict[str, Any]) -> str:
    """The whole findings document as deterministic JSON text."""
    changes = {
        c.binding: {
            "action": c.action,
            "summary": c.summary,
            "creates": [to_manifest(o) for o in c.creates],
            "deletes": [
                {"kind": str(o.kind), "name": o.name, "namespace": o.namespace} for o in c.deletes
            ],
            "keptUnobservable": [_rule(r) for r in c.kept_unobservable],
            "wildcardHidUnobservableVerbs": c.dropped_wildcard_unobservable,
        }
        for c in result.plan.changes
    }
    f = result.findings
    doc = {
        "schemaVersion": SCHEMA_VERSION,
        **meta,
        "proof": {
            "sound": result.proof.sound,
            "distinctRequestsReplayed": result.proof.checked,
            "requestsReplayed": result.proof.requests,
            "changed": len(result.proof.broken),
            "newGrants": len(result.proof.escalations),
        },
        "tightness": None
        if result.tightness is None
        else {
            "identities": result.tightness.identities,
            "usedCells": result.tightness.used_cells,
            "grantedCellsBefore": result.tightness.granted_before,
            "grantedCellsAfter": result.tightness.granted_after,
            "grantedPerUsedBefore": round(result.tightness.before_per_used, 2),
            "grantedPerUsedAfter": round(result.tightness.after_per_used, 2),
        },
        "bindings": [_binding(bf, changes[bf.binding.key]) for bf in f.bindings],
        "denied": [
            {
                "identity": identity_dict(d.identity),
                "access": access_dict(d.access),
                "count": d.count,
                "lastSeen": iso(d.last),
            }
            for d in f.denied
        ],
        "unexplained": [
            {
                "identity": identity_dict(o.identity),
                "access": access_dict(o.access),
                "count": o.count,
            }
            for o in f.unexplained
        ],
        "privilegedRequests": f.privileged_requests,
        "warnings": list(f.warnings),
        "planNotes": list(result.plan.notes),
    }
    return json.dumps(doc, indent=2, sort_keys=False, ensure_ascii=False) + "\n"

"""Requests drawn by hypothesis and written as audit lines, as an apiserver logs them.

A request is (auditID, user, verb, requestURI, stages logged, decision, response code,
seconds into a three-day window, impersonated, logged without objectRef); auditIDs are
drawn from four on purpose, so that different requests reuse one.
"""

from __future__ import annotations

import random
from typing import Any

from audit_samples import event, line
from hypothesis import strategies as st

STAGES = ("RequestReceived", "ResponseStarted", "ResponseComplete")
_URIS = (
    "/api/v1/namespaces/ns/pods/p",
    "/api/v1/namespaces/ns/pods/q",
    "/api/v1/namespaces/ns/pods/p/exec?command=sh&stdin=true",
    "/api/v1/namespaces/ns/pods",
    "/api/v1/namespaces/ns/pods?fieldSelector=metadata.name%3Dp&watch=true",
    "/healthz?verbose=1",
)
request = st.tuples(
    st.sampled_from(["a", "b", "c", "d"]),  # auditID, reused on purpose
    st.sampled_from(["alice", "bob", "system:serviceaccount:ns:sa"]),
    st.sampled_from(["get", "list", "watch", "patch", "create"]),
    st.sampled_from(_URIS),
    st.sets(st.sampled_from(STAGES), min_size=1),  # RequestReceived-only requests included
    st.sampled_from(["allow", "forbid", None]),
    st.sampled_from([200, 201, 403, 401]),
    st.integers(0, 3 * 86400),
    st.booleans(),  # impersonated
    st.booleans(),  # logged without objectRef (rewritten or exported logs)
)


def request_lines(reqs: list[tuple[Any, ...]]) -> list[list[bytes]]:
    """The lines of each distinct request drawn from :data:`request`, stages in order."""
    seen = {}
    for aid, user, verb, uri, stages, dec, code, t, imp, no_ref in reqs:
        seen.setdefault((aid, user, verb, uri), (stages, dec, code, t, imp, no_ref))
    out = []
    for (aid, user, verb, uri), (stages, dec, code, t, imp, no_ref) in seen.items():
        hh, mm, ss = t % 86400 // 3600, t % 3600 // 60, t % 60
        ts = f"2026-11-{20 + t // 86400:02d}T{hh:02d}:{mm:02d}:{ss:02d}.{t % 999983:06d}Z"
        path = uri.partition("?")[0].split("/")
        ref: dict[str, str] | None = {"resource": "pods", "namespace": "ns", "apiVersion": "v1"}
        if len(path) > 6:
            ref["name"] = path[6]
        if len(path) > 7:
            ref["subresource"] = path[7]
        if no_ref or not uri.startswith("/api/"):
            ref = None
        reason = 'RBAC: allowed by ClusterRoleBinding "x" of ClusterRole "y" to User "alice"'
        events = stage_events(
            stages,
            imp=imp,
            audit_id=aid,
            verb=verb,
            uri=uri,
            user=user,
            ref=ref,
            time=ts,
            decision=dec,
            code=code,
            reason=reason if dec == "allow" else None,
        )
        if ref is None:
            for d in events:
                d.pop("objectRef", None)
        out.append([line(d) for d in events])
    return out


def stage_events(stages: set[str], *, imp: bool, **fields: Any) -> list[dict[str, Any]]:
    """One request's events at each of ``stages``, in order; with ``imp`` impersonating
    from ResponseStarted on (RequestReceived is logged before the impersonation filter)."""
    per = []
    for stage in sorted(stages, key=STAGES.index):
        kw = {**fields, "stage": stage}
        if imp and stage != "RequestReceived":
            kw["imp"] = {"username": "carol", "groups": ["ops"]}
        per.append(event(**kw))
    return per


def interleave(per: list[list[bytes]], rnd: random.Random) -> list[bytes]:
    """Stages of concurrent requests interleaved in order, plus some duplicated lines."""
    queues = [list(p) for p in per]
    out = []
    while queues:
        q = rnd.choice(queues)
        out.append(q.pop(0))
        if rnd.random() < 0.1:
            out.append(out[-1])
        if not q:
            queues.remove(q)
    return out

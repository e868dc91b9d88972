"""Builders for audit log lines used by the audit, usage and logfiles tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from corpus import corpus_dir


def corpus() -> Path:
    """The shared corpus (see corpus.corpus_dir)."""
    return corpus_dir()


def event(
    *,
    audit_id: str = "id-1",
    stage: str = "ResponseComplete",
    verb: str = "get",
    uri: str = "/api/v1/namespaces/ns/pods/p",
    user: str = "alice",
    groups: list[str] | None = None,
    ref: dict[str, str] | None = None,
    code: int | None = 200,
    decision: str | None = "allow",
    reason: str | None = "",
    ua: str = "kubectl/v1.36.3 (linux/amd64) kubernetes/abc1234",
    ip: str = "10.0.0.1",
    time: str = "2026-11-20T10:00:00.000001Z",
    imp: dict[str, Any] | None = None,
    api_version: str = "audit.k8s.io/v1",
    **extra: Any,
) -> dict[str, Any]:
    """A native event in the apiserver's field order (so the fast path reads it)."""
    d: dict[str, Any] = {
        "kind": "Event",
        "apiVersion": api_version,
        "level": "Metadata",
        "auditID": audit_id,
        "stage": stage,
        "requestURI": uri,
        "verb": verb,
        "user": {
            "username": user,
            "groups": groups if groups is not None else ["dev", "system:authenticated"],
        },
    }
    if imp is not None:
        d["impersonatedUser"] = imp
    d["sourceIPs"] = [ip]
    d["userAgent"] = ua
    if ref is None and uri.startswith("/api/v1/namespaces/ns/pods"):
        ref = {"resource": "pods", "namespace": "ns", "name": "p", "apiVersion": "v1"}
    if ref is not None:
        d["objectRef"] = ref
    if code is not None and stage != "RequestReceived":
        d["responseStatus"] = {"metadata": {}, "code": code}
    d["requestReceivedTimestamp"] = time
    d["stageTimestamp"] = time
    if stage != "RequestReceived" and decision is not None:
        ann = {"authorization.k8s.io/decision": decision}
        if reason is not None:
            ann["authorization.k8s.io/reason"] = reason
        d["annotations"] = ann
    d.update(extra)
    return d


def line(d: dict[str, Any]) -> bytes:
    """Compact JSON, as the apiserver writes it."""
    return json.dumps(d, separators=(",", ":")).encode()


def lines(*events: dict[str, Any], path: str = "t.log") -> list[tuple[str, int, bytes]]:
    """Numbered lines for ``parse_lines``."""
    return [(path, i, line(e)) for i, e in enumerate(events, 1)]


def read_logs(paths: list[str], **options: Any) -> Any:
    """``load_usage`` as a plain run does it: one process, no window, no progress bar."""
    from rbac_advisor.cli.ingest import load_usage

    defaults = {"skip_malformed": False, "since": None, "until": None, "kubectl_only": False}
    return load_usage(paths, **{**defaults, "progress": False, "workers": 1, **options})

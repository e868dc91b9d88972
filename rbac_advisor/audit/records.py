"""Decoded JSON records of any supported shape to Events. Pure: no I/O.

Shapes are detected per record, so one file may mix them: native events (v1, v1beta1),
EventList batches, JSON arrays, EKS CloudWatch envelopes and Panther rows, GKE LogEntries
and AKS resource-log records (alone or in a ``records`` batch).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from rbac_advisor.audit import aks, eks, gke, native
from rbac_advisor.audit.normalise import Malformed
from rbac_advisor.events import Event


@dataclass(slots=True)
class Parsed:
    """What one record yielded: events, shapes seen, fields lacking, records ignored."""

    events: list[Event] = field(default_factory=list)
    formats: set[str] = field(default_factory=set)
    missing: set[str] = field(default_factory=set)
    ignored: int = 0


def _native(d: Mapping[str, Any], out: Parsed, fmt: str, fallback_time: float = 0.0) -> None:
    version = native.api_version(d)
    if version and version != "v1":
        fmt = f"{fmt}-{version}" if fmt != "native" else f"native-{version}"
    out.formats.add(fmt)
    if eks.is_panther(d) and not fallback_time:
        fallback_time = eks.panther_time(d)
    out.events.append(native.from_dict(d, fallback_time))
    out.missing.update(native.missing_fields(d))


def parse_record(obj: Any, out: Parsed | None = None) -> Parsed:
    """Turn one decoded JSON value into Events.

    Raises:
        Malformed: the value is not an audit record of a known shape, or is unusable.
    """
    out = out if out is not None else Parsed()
    if isinstance(obj, list):
        if not obj:
            raise Malformed("empty JSON array")
        for i, item in enumerate(obj):
            try:
                parse_record(item, out)
            except Malformed as err:
                raise Malformed(f"item {i}: {err}") from None
        return out
    if not isinstance(obj, dict):
        raise Malformed(f"not an audit event: a JSON {type(obj).__name__}")
    kind = obj.get("kind")
    if kind == "EventList":
        items = obj.get("items")
        if not isinstance(items, list):
            raise Malformed("EventList without an items list")
        out.formats.add("eventlist")
        for i, item in enumerate(items):
            if not isinstance(item, dict) or not native.is_native(item):
                raise Malformed(f"items[{i}] is not an audit event")
            try:
                _native(item, out, "eventlist")
            except Malformed as err:
                raise Malformed(f"items[{i}]: {err}") from None
        return out
    if native.is_native(obj):
        _native(obj, out, "eks" if eks.is_panther(obj) else "native")
        return out
    if eks.is_cloudwatch(obj):
        msgs = eks.messages(obj)
        if not msgs:
            out.ignored += 1
        for i, (ev, ms) in enumerate(msgs):
            if not native.is_native(ev):
                raise Malformed(f"logEvents[{i}].message is not an audit event")
            try:
                _native(ev, out, "eks-cloudwatch", ms)
            except Malformed as err:
                raise Malformed(f"logEvents[{i}]: {err}") from None
        return out
    if gke.is_gke(obj):
        if not gke.is_kubernetes(obj):
            out.ignored += 1
            return out
        out.formats.add("gke")
        out.events.append(gke.from_dict(obj))
        out.missing.update(gke.MISSING)
        return out
    if isinstance(obj.get("records"), list) and obj["records"]:
        for i, rec in enumerate(obj["records"]):
            try:
                parse_record(rec, out)
            except Malformed as err:
                raise Malformed(f"records[{i}]: {err}") from None
        return out
    if aks.is_aks(obj):
        inner = aks.inner_event(obj)
        if inner is None:
            out.ignored += 1
            return out
        if not native.is_native(inner):
            raise Malformed("properties.log is not an audit event")
        fallback = 0.0
        t = obj.get("time")
        if isinstance(t, str) and t:
            fallback = native.event_time({"timestamp": t})
        elif eks.is_panther(obj):
            fallback = eks.panther_time(obj)
        _native(inner, out, "aks", fallback)
        if obj.get("category") == "kube-audit-admin":
            out.missing.add(aks.ADMIN_ONLY_MISSING)
        return out
    if kind is not None:
        raise Malformed(f"not an audit event: kind {kind!r}, apiVersion {obj.get('apiVersion')!r}")
    raise Malformed("not an audit event: unknown JSON object")

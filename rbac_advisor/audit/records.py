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
    """What one record yielded: events, shapes seen, fields lacking, records ignored.

    ``skipped`` holds the reason for each item of a batch that was left out (only when
    :func:`parse_record` was asked to skip malformed items), each naming the item.
    """

    events: list[Event] = field(default_factory=list)
    formats: set[str] = field(default_factory=set)
    missing: set[str] = field(default_factory=set)
    ignored: int = 0
    skipped: list[str] = field(default_factory=list)


def _native(d: Mapping[str, Any], out: Parsed, fmt: str, fallback_time: float = 0.0) -> None:
    # Adds nothing to ``out`` unless the event is good (a skipped batch item leaves no trace).
    version = native.api_version(d)
    if version and version != "v1":
        fmt = f"{fmt}-{version}" if fmt != "native" else f"native-{version}"
    if eks.is_panther(d) and not fallback_time:
        fallback_time = eks.panther_time(d)
    ev = native.from_dict(d, fallback_time)
    out.formats.add(fmt)
    out.events.append(ev)
    out.missing.update(native.missing_fields(d))


def _bad_item(out: Parsed, skip: bool, reason: str) -> None:
    """Skip one malformed batch item (noting why), or fail the whole record."""
    if not skip:
        raise Malformed(reason) from None
    out.skipped.append(reason)


# Batches within batches (an array of EventLists, of CloudWatch envelopes, of arrays) are
# read this many levels deep; a record nested deeper is malformed, not a deeper recursion.
MAX_BATCH_DEPTH = 8


def _deeper(depth: int) -> None:
    """Refuse to read the items of a batch that lies within ``MAX_BATCH_DEPTH`` others."""
    if depth > MAX_BATCH_DEPTH:
        raise Malformed(f"batches nested more than {MAX_BATCH_DEPTH} deep")


def _nested(obj: Any, out: Parsed, skip: bool, where: str, depth: int) -> None:
    """Parse a batch item that may itself be a batch; ``where`` names it in reasons."""
    n = len(out.skipped)
    reason = ""
    try:
        _record(obj, out, skip, depth)
    except Malformed as err:
        reason = f"{where}: {err}"
    for j in range(n, len(out.skipped)):
        out.skipped[j] = f"{where}: {out.skipped[j]}"
    if reason:
        _bad_item(out, skip, reason)


def parse_record(obj: Any, out: Parsed | None = None, *, skip_malformed: bool = False) -> Parsed:
    """Turn one decoded JSON value into Events.

    A batch (JSON array, EventList, CloudWatch envelope, ``records`` list) is read item by
    item: with ``skip_malformed`` a malformed item is left out and its reason added to
    ``Parsed.skipped``, and the other items still count; without it the record fails.

    Raises:
        Malformed: the value is not an audit record of a known shape, or is unusable (with
            ``skip_malformed``: only when the record as a whole is, not one item of it).
    """
    out = out if out is not None else Parsed()
    _record(obj, out, skip_malformed, 1)
    return out


def _record(obj: Any, out: Parsed, skip: bool, depth: int) -> Parsed:
    """:func:`parse_record` of a record within ``depth - 1`` batches."""
    if isinstance(obj, list):
        if not obj:
            raise Malformed("empty JSON array")
        _deeper(depth)
        for i, item in enumerate(obj):
            _nested(item, out, skip, f"item {i}", depth + 1)
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
                _bad_item(out, skip, f"items[{i}] is not an audit event")
                continue
            try:
                _native(item, out, "eventlist")
            except Malformed as err:
                _bad_item(out, skip, f"items[{i}]: {err}")
        return out
    if native.is_native(obj):
        _native(obj, out, "eks" if eks.is_panther(obj) else "native")
        return out
    if eks.is_cloudwatch(obj):
        log_events = eks.log_events(obj)
        if not log_events:
            out.ignored += 1
        elif eks.other_stream(obj):
            out.ignored += len(log_events)  # another control-plane log: no API requests
            return out
        for i, item in enumerate(log_events):
            try:
                msg, ms = eks.message(item, i)
            except Malformed as err:
                _bad_item(out, skip, str(err))
                continue
            if not native.is_native(msg):
                _bad_item(out, skip, f"logEvents[{i}].message is not an audit event")
                continue
            try:
                _native(msg, out, "eks-cloudwatch", ms)
            except Malformed as err:
                _bad_item(out, skip, f"logEvents[{i}]: {err}")
        return out
    if gke.is_gke(obj):
        if not gke.is_kubernetes(obj):
            out.ignored += 1
            return out
        ev = gke.from_dict(obj)
        out.formats.add("gke")
        out.events.append(ev)
        out.missing.update(gke.missing_fields(obj))
        return out
    if isinstance(obj.get("records"), list) and obj["records"]:
        _deeper(depth)
        for i, rec in enumerate(obj["records"]):
            _nested(rec, out, skip, f"records[{i}]", depth + 1)
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
        if t is not None and not isinstance(t, str):
            raise Malformed(f"time must be a string, got {type(t).__name__}")
        if t:
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

"""EKS audit events: CloudWatch Logs subscription envelopes and Panther-style rows. Pure.

EKS writes native events to CloudWatch; a subscription or Firehose export wraps them as
``{"messageType":"DATA_MESSAGE","logEvents":[{"message":"<event JSON>"}]}``. Panther stores
the native event with ``p_*`` fields added (``p_event_time`` is used when the event has no
timestamp of its own).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from rbac_advisor.audit import jsonvalue
from rbac_advisor.audit.normalise import Malformed
from rbac_advisor.audit.timestamps import parse_time

# Milliseconds at 10000-01-01: later times cannot be written as RFC 3339.
_MS_MAX = 253_402_300_800_000


def is_cloudwatch(d: Mapping[str, Any]) -> bool:
    """True for a CloudWatch Logs subscription message."""
    return "messageType" in d and "logEvents" in d


def log_events(d: Mapping[str, Any]) -> list[Any]:
    """The ``logEvents`` of a DATA_MESSAGE, unread (a control message has none).

    Raises:
        Malformed: ``logEvents`` is not a list.
    """
    if d.get("messageType") != "DATA_MESSAGE":
        return []
    items = d.get("logEvents")
    if not isinstance(items, list):
        raise Malformed("CloudWatch logEvents must be a list")
    return items


def other_stream(d: Mapping[str, Any]) -> bool:
    """True for a batch of another EKS control-plane log (apiserver, authenticator...).

    EKS writes audit events to the streams ``kube-apiserver-audit-<hash>`` of the
    cluster's log group; the others hold plain-text logs, no API requests.
    """
    stream = d.get("logStream")
    return isinstance(stream, str) and not stream.startswith("kube-apiserver-audit")


def message(item: Any, i: int) -> tuple[dict[str, Any], float]:
    """The event in log event ``i`` of a batch with the log event's own time (0 when absent).

    Raises:
        Malformed: the log event or its message is not what CloudWatch writes (the reason
            names ``logEvents[i]``).
    """
    msg = item.get("message") if isinstance(item, dict) else None
    if not isinstance(msg, str):
        raise Malformed(f"logEvents[{i}].message must be a string")
    try:
        ev = jsonvalue.loads(msg)
    except orjson.JSONDecodeError as err:
        raise Malformed(f"logEvents[{i}].message is not JSON: {err}") from None
    if not isinstance(ev, dict):
        raise Malformed(f"logEvents[{i}].message is not a JSON object")
    ms = item.get("timestamp")
    if not isinstance(ms, int | float) or isinstance(ms, bool):
        return ev, 0.0
    if not 0 <= ms < _MS_MAX:
        raise Malformed(f"logEvents[{i}].timestamp {ms!r} is not milliseconds since 1970")
    return ev, ms / 1000.0


def is_panther(d: Mapping[str, Any]) -> bool:
    """True for a row that carries Panther's ``p_*`` fields."""
    return "p_log_type" in d


def panther_time(d: Mapping[str, Any]) -> float:
    """``p_event_time`` as epoch seconds (0 when absent)."""
    t = d.get("p_event_time")
    if not isinstance(t, str) or not t:
        return 0.0
    try:
        return parse_time(t)
    except ValueError as err:
        raise Malformed(str(err)) from None

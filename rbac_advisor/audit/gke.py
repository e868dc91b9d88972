"""GKE Cloud Audit Logs entries (LogEntry with an AuditLog protoPayload) to Events. Pure.

GKE renames everything (see corpus FORMATS.md section 2): the user is
``authenticationInfo.principalEmail``, the verb the last segment of ``methodName``, the
object the ``resourceName`` path. There are no groups, stages or impersonation fields.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from rbac_advisor.audit.normalise import (
    Malformed,
    access,
    make_event,
    resource_access,
    service_account,
)
from rbac_advisor.audit.requestinfo import parts_info
from rbac_advisor.audit.timestamps import parse_time
from rbac_advisor.events import Event
from rbac_advisor.rbac import ALL_AUTHENTICATED, ALL_UNAUTHENTICATED, ANONYMOUS, Access

MISSING = ("impersonatedUser", "requestURI", "stage", "user.groups")
_VERSION = re.compile(r"^v\d+((alpha|beta)\d+)?$")
_HTTP_VERBS = frozenset({"get", "post", "put", "patch", "delete", "head", "options"})
# gRPC status codes GKE writes, as the HTTP codes the apiserver answered.
_GRPC_TO_HTTP = {0: 200, 3: 400, 5: 404, 6: 409, 7: 403, 8: 429, 10: 409, 13: 500, 16: 401}
_UNAUTHENTICATED = 16


def is_gke(d: Mapping[str, Any]) -> bool:
    """True for any Cloud Logging entry with a protoPayload (Kubernetes or not)."""
    return isinstance(d.get("protoPayload"), dict)


def is_kubernetes(d: Mapping[str, Any]) -> bool:
    """True when the entry records a Kubernetes API request (not another Google service)."""
    p = d["protoPayload"]
    method = p.get("methodName")
    service = p.get("serviceName")
    if service is not None and service != "k8s.io":
        return False
    return isinstance(method, str) and method.startswith("io.k8s.")


def _groups(user: str) -> list[str]:
    # The identity facts every apiserver adds (A3); anything else is unknown in GKE logs.
    sa = service_account(user)
    if user == ANONYMOUS:
        return [ALL_UNAUTHENTICATED]
    groups = [ALL_AUTHENTICATED]
    if sa is not None:
        groups += ["system:serviceaccounts", f"system:serviceaccounts:{sa[0]}"]
    return groups


def _request(method: str, resource_name: str, perm_resource: str) -> Access:
    segs = method.split(".")[2:]  # drop "io", "k8s"
    if not segs:
        raise Malformed(f"methodName {method!r} names no verb")
    verb = segs[-1]
    vi = next((i for i, s in enumerate(segs[:-1]) if _VERSION.match(s)), None)
    if vi is None:
        # Non-resource: io.k8s.<http verb> with the path in resourceName, or io.k8s.<path>.
        path = resource_name or perm_resource
        if verb not in _HTTP_VERBS:
            path, verb = path or verb, "get"
        return access(verb, path="/" + path.lstrip("/"), resource_request=False)
    path = (resource_name or perm_resource).strip("/")
    parts = path.split("/") if path else []
    if len(parts) >= 3 and _VERSION.match(parts[1]):
        group = "" if parts[0] == "core" else parts[0]
        info = parts_info(group, parts[2:])
        if info is not None and info.name and not info.subresource and verb == "create":
            # resourceName names the created object (from the body); the URL had no name,
            # and for a namespace no namespace either.
            info = parts_info(group, parts[2:-1])
        if info is not None:
            return resource_access(
                verb, "", info.api_group, info.resource, info.subresource, info.namespace, info.name
            )
    # No usable resourceName: fall back on methodName (its group may be shortened).
    group = ".".join(segs[:vi])
    rest = segs[vi + 1 : -1]
    if not rest:
        raise Malformed(f"methodName {method!r} names no resource")
    return resource_access(
        verb,
        "",
        "" if group == "core" else group,
        rest[0],
        rest[1] if len(rest) > 1 else "",
        "",
        "",
    )


def missing_fields(d: Mapping[str, Any]) -> tuple[str, ...]:
    """What one Kubernetes LogEntry lacks, in the native event's field names.

    :data:`MISSING` always; the rest when this entry has no user agent, caller address,
    time, request id or decision.
    """
    p = d["protoPayload"]
    meta = _dict(p.get("requestMetadata"))
    labels = _dict(d.get("labels"))
    infos = p.get("authorizationInfo") or d.get("authorizationInfo") or []
    decided = "authorization.k8s.io/decision" in labels or any(
        isinstance(i, dict) and "granted" in i for i in infos if isinstance(infos, list)
    )
    unauthenticated = _dict(p.get("status")).get("code") == _UNAUTHENTICATED
    out = list(MISSING)
    for field, present in (
        ("userAgent", meta.get("callerSuppliedUserAgent")),
        ("sourceIPs", meta.get("callerIp") or meta.get("callerIP")),
        ("requestReceivedTimestamp", d.get("timestamp") or p.get("timestamp")),
        ("auditID", _dict(d.get("operation")).get("id") or d.get("insertId")),
        ("annotations.authorization.k8s.io/decision", decided or unauthenticated),
    ):
        if not present:
            out.append(field)
    return tuple(out)


def _dict(v: Any) -> dict[str, Any]:
    return v if isinstance(v, dict) else {}


def from_dict(d: Mapping[str, Any]) -> Event:
    """One Kubernetes LogEntry to an Event (check :func:`is_kubernetes` first)."""
    p = d["protoPayload"]
    authn = p.get("authenticationInfo") or {}
    user = authn.get("principalEmail") if isinstance(authn, dict) else None
    status = p.get("status")
    grpc = status.get("code", 0) if isinstance(status, dict) else None
    if grpc is not None and (not isinstance(grpc, int) or isinstance(grpc, bool)):
        raise Malformed("protoPayload.status.code must be an integer")
    if user is None and grpc == _UNAUTHENTICATED:
        user = ""  # no principal: the request was never authenticated
    elif not isinstance(user, str) or not user:
        raise Malformed("GKE entry has no protoPayload.authenticationInfo.principalEmail")
    infos = p.get("authorizationInfo") or d.get("authorizationInfo") or []
    if not isinstance(infos, list):
        raise Malformed("protoPayload.authorizationInfo must be a list")
    infos = [i for i in infos if isinstance(i, dict)]
    perm_resource = next((str(i["resource"]) for i in infos if i.get("resource")), "")
    resource_name = p.get("resourceName") or ""
    if not isinstance(resource_name, str):
        raise Malformed("protoPayload.resourceName must be a string")
    request = _request(str(p["methodName"]), resource_name, perm_resource)
    labels = _dict(d.get("labels"))
    decision = labels.get("authorization.k8s.io/decision")
    code = _GRPC_TO_HTTP.get(grpc or 0, 500) if status is not None else 0
    granted = [i["granted"] for i in infos if "granted" in i]
    if any(not isinstance(g, bool) for g in granted):
        raise Malformed("protoPayload.authorizationInfo[].granted must be true or false")
    if decision is None and granted:
        decision = "allow" if all(granted) else "forbid"
    if decision is None and code == 0 and infos:
        code = 200  # an entry with authorizationInfo but no status was served
    meta = _dict(p.get("requestMetadata"))
    ip = meta.get("callerIp") or meta.get("callerIP") or ""
    agent = meta.get("callerSuppliedUserAgent") or ""
    for field, value in (("callerIp", ip), ("callerSuppliedUserAgent", agent)):
        if not isinstance(value, str):
            raise Malformed(f"protoPayload.requestMetadata.{field} must be a string")
    stamp = d.get("timestamp") or p.get("timestamp") or ""
    if not isinstance(stamp, str):
        raise Malformed(f"timestamp must be a string, got {type(stamp).__name__}")
    try:
        when = parse_time(stamp) if stamp else 0.0
    except ValueError as err:
        raise Malformed(str(err)) from None
    op = _dict(d.get("operation"))
    reason = labels.get("authorization.k8s.io/reason")
    # A long operation (a watch, an exec) is logged twice, first and last, under one
    # operation id: that id is its request's. Any other entry is a request of its own
    # (insertId names the entry; an operation id may be reused).
    long_op = op.get("first") or op.get("last")
    request_id = (long_op and op.get("id")) or d.get("insertId") or op.get("id") or ""
    return make_event(
        audit_id=str(request_id),
        stage="",
        uri="",
        verb=request.verb,
        user=user,
        groups=_groups(user),
        request=request,
        code=code,
        status_reason="Forbidden" if code == 403 else "",
        message="",
        time=when,
        decision=decision if isinstance(decision, str) else None,
        reason=reason if isinstance(reason, str) else None,
        user_agent=agent,
        source_ip=ip,
    )

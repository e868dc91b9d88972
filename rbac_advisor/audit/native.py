"""Native audit.k8s.io events (v1, v1beta1) to Events. Pure: no I/O.

Two readers share :func:`normalise.make_event`: a typed msgspec decoder that reads only the
fields we use (the hot path for apiserver logs) and a tolerant dict walker used for every
other shape and whenever the typed decoder refuses a line, so that errors name the field.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

import msgspec

from rbac_advisor.audit.normalise import Malformed, make_event, resource_access, uri_access
from rbac_advisor.audit.timestamps import GO_STAMP, parse_time
from rbac_advisor.events import Event

API_PREFIX = "audit.k8s.io/"
DECISION = "authorization.k8s.io/decision"
REASON = "authorization.k8s.io/reason"
GO_PREFIX = b'{"kind":"Event","apiVersion":"audit.k8s.io/v1",'


def is_native(d: Mapping[str, Any]) -> bool:
    """True for an audit.k8s.io Event (a core/v1 Event has kind Event too: check the group)."""
    api = d.get("apiVersion")
    if isinstance(api, str) and api:
        return api.startswith(API_PREFIX) and d.get("kind", "Event") == "Event"
    if d.get("kind") == "Event":
        return "verb" in d or "auditID" in d or "stage" in d
    return False


def api_version(d: Mapping[str, Any]) -> str:
    """``v1``, ``v1beta1``... of a native event ("" when the record does not say)."""
    api = d.get("apiVersion")
    return api[len(API_PREFIX) :] if isinstance(api, str) and api.startswith(API_PREFIX) else ""


def _str(d: Mapping[str, Any], key: str, where: str = "") -> str:
    v = d.get(key)
    if v is None:
        return ""
    if not isinstance(v, str):
        raise Malformed(f"{where}{key} must be a string, got {type(v).__name__}")
    return v


def _obj(d: Mapping[str, Any], key: str) -> Mapping[str, Any] | None:
    v = d.get(key)
    if v is None:
        return None
    if not isinstance(v, dict):
        raise Malformed(f"{key} must be an object, got {type(v).__name__}")
    return v


def _strings(v: Any, what: str) -> list[str]:
    if v is None:
        return []
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise Malformed(f"{what} must be a list of strings")
    return v


def _extra(v: Any, what: str) -> dict[str, list[str]]:
    if v is None:
        return {}
    if not isinstance(v, dict):
        raise Malformed(f"{what} must be an object")
    return {str(k): _strings(x, f"{what}.{k}") for k, x in v.items()}


def event_time(d: Mapping[str, Any], fallback: float = 0.0) -> float:
    """requestReceivedTimestamp, else v1beta1 ``timestamp``, creationTimestamp, stageTimestamp.

    ``requestReceivedTimestamp`` and ``timestamp`` must be strings (the typed decoder
    refuses anything else too); the later fallbacks are only checked when consulted.

    Raises:
        Malformed: a timestamp consulted is not a string or not a time.
    """
    received = _str(d, "requestReceivedTimestamp")
    stamp = _str(d, "timestamp")
    value = received or stamp
    if not value:
        meta = d.get("metadata")
        if isinstance(meta, dict):
            value = _str(meta, "creationTimestamp", "metadata.")
    if not value:
        value = _str(d, "stageTimestamp")
    if not value:
        return fallback
    try:
        return parse_time(value)
    except ValueError as err:
        raise Malformed(str(err)) from None


def from_dict(d: Mapping[str, Any], fallback_time: float = 0.0) -> Event:
    """One native event (already decoded JSON) to an Event.

    Raises:
        Malformed: a field has the wrong type, or verb/user/target are missing.
    """
    user = _obj(d, "user")
    if user is None:
        raise Malformed("audit event has no user")
    if "verb" not in d:
        # The apiserver always writes it; "" is a real verb (another HTTP method).
        raise Malformed("audit event has no verb")
    imp = _obj(d, "impersonatedUser")
    ref = _obj(d, "objectRef")
    status = _obj(d, "responseStatus") or {}
    ann = _obj(d, "annotations") or {}
    verb = _str(d, "verb")
    uri = _str(d, "requestURI")
    code = status.get("code", 0)
    if code is None:
        code = 0
    if not isinstance(code, int) or isinstance(code, bool):
        raise Malformed("responseStatus.code must be an integer")
    if ref is not None and _str(ref, "resource", "objectRef."):
        request = resource_access(
            verb,
            uri,
            _str(ref, "apiGroup", "objectRef."),
            _str(ref, "resource", "objectRef."),
            _str(ref, "subresource", "objectRef."),
            _str(ref, "namespace", "objectRef."),
            _str(ref, "name", "objectRef."),
        )
    elif uri:
        request = uri_access(verb, uri)
    else:
        raise Malformed("audit event has neither objectRef nor requestURI")
    authn = _obj(d, "authenticationMetadata") or {}
    ips = _strings(d.get("sourceIPs"), "sourceIPs")
    decision = ann.get(DECISION)
    reason = ann.get(REASON)
    return make_event(
        audit_id=_str(d, "auditID"),
        stage=_str(d, "stage"),
        uri=uri,
        verb=verb,
        user=_str(user, "username", "user."),
        groups=_strings(user.get("groups"), "user.groups"),
        request=request,
        code=code,
        status_reason=_str(status, "reason", "responseStatus."),
        message=_str(status, "message", "responseStatus."),
        time=event_time(d, fallback_time),
        decision=decision if isinstance(decision, str) else None,
        reason=reason if isinstance(reason, str) else None,
        user_agent=_str(d, "userAgent"),
        source_ip=ips[0] if ips else "",
        imp_user=_str(imp, "username", "impersonatedUser.") if imp else "",
        imp_groups=_strings(imp.get("groups"), "impersonatedUser.groups") if imp else (),
        imp_uid=_str(imp, "uid", "impersonatedUser.") if imp else "",
        imp_extra=_extra(imp.get("extra"), "impersonatedUser.extra") if imp else None,
        constraint=_str(authn, "impersonationConstraint", "authenticationMetadata."),
        received=_str(d, "requestReceivedTimestamp"),
    )


def missing_fields(d: Mapping[str, Any]) -> tuple[str, ...]:
    """Fields a native record lacks that the report should mention."""
    out = []
    status = d.get("responseStatus")
    unauthenticated = isinstance(status, dict) and status.get("code") == 401
    user = d.get("user")
    if not unauthenticated and (not isinstance(user, dict) or not user.get("groups")):
        out.append("user.groups")
    for key in ("auditID", "stage", "userAgent", "sourceIPs"):
        if not d.get(key):
            out.append(key)
    if not any(d.get(k) for k in ("requestReceivedTimestamp", "timestamp", "stageTimestamp")):
        out.append("requestReceivedTimestamp")
    ann = d.get("annotations")
    decided = isinstance(ann, dict) and DECISION in ann
    if d.get("stage") != "RequestReceived" and not decided and not unauthenticated:
        out.append("annotations." + DECISION)
    return tuple(out)


# --- typed fast path -------------------------------------------------------------------


class UserStruct(msgspec.Struct, frozen=True, cache_hash=True):
    """The fields of ``user`` we read (hashable: the fast path keys on it)."""

    username: str = ""
    groups: tuple[str, ...] = ()


class _ImpUser(msgspec.Struct):
    username: str = ""
    uid: str = ""
    groups: list[str] = []
    extra: dict[str, list[str]] = {}


class RefStruct(msgspec.Struct, frozen=True):
    """The fields of ``objectRef`` we read (hashable)."""

    resource: str = ""
    namespace: str = ""
    name: str = ""
    apiGroup: str = ""
    subresource: str = ""


class _Status(msgspec.Struct):
    # An int64, as the apiserver writes it. The general path reads larger ones (orjson
    # gives a float past 64 bits, which is refused there), so they are left to it.
    code: Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)] = 0
    reason: str = ""
    message: str = ""


class AnnStruct(msgspec.Struct, frozen=True, cache_hash=True):
    """The authorization annotations (hashable)."""

    decision: str | None = msgspec.field(default=None, name=DECISION)
    reason: str | None = msgspec.field(default=None, name=REASON)


class _AuthnMeta(msgspec.Struct):
    impersonationConstraint: str = ""


class NativeStruct(msgspec.Struct):
    """The fields of a native event we read; everything else is skipped unread."""

    kind: str = ""
    apiVersion: str = ""
    auditID: str = ""
    stage: str = ""
    requestURI: str = ""
    verb: str = ""
    user: UserStruct | None = None
    impersonatedUser: _ImpUser | None = None
    authenticationMetadata: _AuthnMeta | None = None
    sourceIPs: list[str] = []
    userAgent: str = ""
    objectRef: RefStruct | None = None
    responseStatus: _Status | None = None
    requestReceivedTimestamp: str = ""
    timestamp: str = ""
    annotations: AnnStruct | None = None
    p_log_type: str = ""  # a Panther row: leave it to the general path


_decoder = msgspec.json.Decoder(NativeStruct)
# What the typed decoders raise for a line they cannot read: the general path then reads it
# and names the problem (invalid UTF-8 in a field read, nesting too deep, wrong types).
DECODE_ERRORS = (msgspec.ValidationError, msgspec.DecodeError, UnicodeDecodeError, RecursionError)
_EMPTY_STATUS = _Status()
_EMPTY_ANN = AnnStruct()


def decoder() -> msgspec.json.Decoder[NativeStruct]:
    """The typed decoder (check :func:`usable` on what it returns)."""
    return _decoder


def usable(e: NativeStruct) -> bool:
    """True for an audit.k8s.io/v1 event with a user and no exporter fields."""
    return (
        e.kind == "Event"
        and e.apiVersion == "audit.k8s.io/v1"
        and bool(e.user)
        and not e.p_log_type
    )


def early_usable(e: NativeStruct) -> bool:
    """True when an early-stage struct holds what its Event needs, as a final stage must.

    Keyed by audit ID, user name, verb, URI and receive time, it may then wait for the
    final stage of its request and be dropped unread. Otherwise the general path reads it
    (and says what is wrong with it, if anything). One expression: it runs for every
    early-stage line.
    """
    user = e.user
    ref = e.objectRef
    stamp = e.requestReceivedTimestamp or e.timestamp
    return bool(
        e.auditID
        and e.verb
        and user is not None
        and user.username
        and e.kind == "Event"
        and e.apiVersion == "audit.k8s.io/v1"
        and not e.p_log_type
        and ((ref is not None and ref.resource) or e.requestURI)
        and stamp
        and ((_go_stamp(stamp) is not None and stamp[:10] in _DAYS) or _is_time(stamp))
    )


_go_stamp = GO_STAMP.fullmatch
_DAYS: set[str] = set()  # dates of the apiserver's time form known to exist (not 02-30)


def _is_time(text: str) -> bool:
    try:
        parse_time(text)
    except ValueError:
        return False
    if _go_stamp(text) is not None:
        if len(_DAYS) >= 100_000:
            _DAYS.clear()
        _DAYS.add(text[:10])
    return True


def decode_struct(line: bytes) -> NativeStruct | None:
    """Decode an apiserver-written v1 line into the typed struct; None if it is not one."""
    try:
        e = _decoder.decode(line)
    except DECODE_ERRORS:
        return None
    return e if usable(e) else None


def user_of(e: NativeStruct) -> UserStruct | None:
    """The struct's user (None if absent)."""
    return e.user


def decode_fast(line: bytes) -> tuple[Event, bool] | None:
    """Decode one apiserver-written v1 line; None when the general path must handle it.

    Returns the Event and whether the record lacks a field worth reporting (the caller
    then asks :func:`missing_fields` on the general path for which).
    """
    e = decode_struct(line)
    return None if e is None else struct_event(e)


def struct_event(e: NativeStruct) -> tuple[Event, bool] | None:
    """The Event of a decoded struct (see :func:`decode_fast`)."""
    user = user_of(e)
    if user is None or not e.verb:
        return None  # the general path tells an empty verb from a missing one
    ref = e.objectRef
    if ref is not None and ref.resource:
        request = resource_access(
            e.verb,
            e.requestURI,
            ref.apiGroup,
            ref.resource,
            ref.subresource,
            ref.namespace,
            ref.name,
        )
    elif e.requestURI:
        request = uri_access(e.verb, e.requestURI)
    else:
        return None
    status = e.responseStatus or _EMPTY_STATUS
    ann = e.annotations or _EMPTY_ANN
    stamp = e.requestReceivedTimestamp or e.timestamp
    if not stamp:
        return None
    try:
        when = parse_time(stamp)
    except ValueError:
        return None
    imp = e.impersonatedUser
    try:
        ev = make_event(
            audit_id=e.auditID,
            stage=e.stage,
            uri=e.requestURI,
            verb=e.verb,
            user=user.username,
            groups=user.groups,
            request=request,
            code=status.code,
            status_reason=status.reason,
            message=status.message,
            time=when,
            decision=ann.decision,
            reason=ann.reason,
            user_agent=e.userAgent,
            source_ip=e.sourceIPs[0] if e.sourceIPs else "",
            imp_user=imp.username if imp else "",
            imp_groups=imp.groups if imp else (),
            imp_uid=imp.uid if imp else "",
            imp_extra=imp.extra if imp else None,
            constraint=e.authenticationMetadata.impersonationConstraint
            if e.authenticationMetadata
            else "",
            received=e.requestReceivedTimestamp,
        )
    except Malformed:
        return None
    lacking = (
        (not user.groups and status.code != 401)
        or not e.auditID
        or not e.stage
        or not e.userAgent
        or not e.sourceIPs
        or (ann.decision is None and e.stage != "RequestReceived" and status.code != 401)
    )
    return ev, lacking


class LightUser(msgspec.Struct):
    """The user name of an early-stage line."""

    username: str = ""


class Light(msgspec.Struct):
    """What an early-stage (RequestReceived, ResponseStarted) line is keyed by."""

    auditID: str = ""
    stage: str = ""
    requestURI: str = ""
    verb: str = ""
    user: LightUser | None = None
    requestReceivedTimestamp: str = ""


class Stamped(Light):
    """An early-stage key and when the line was written."""

    stageTimestamp: str = ""


_stamped = msgspec.json.Decoder(Stamped)
EARLY_RANK = {"RequestReceived": 0, "ResponseStarted": 1}


def stamped_decoder() -> msgspec.json.Decoder[Stamped]:
    """A decoder of :class:`Stamped`: an early-stage key and the two timestamps."""
    return _stamped

"""Raw audit fields to one normalised Event: the semantics every format shares. Pure.

Identity (impersonation, A6), authorizer attributes (A1), decision and reason (B3, A7) are
decided here, once, for native, EKS, AKS and GKE records alike. Values are interned so
that millions of events share a few thousand Identity and Access objects.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import replace

from rbac_advisor.audit.reason import parse_reason
from rbac_advisor.audit.redact import redact_uri
from rbac_advisor.audit.requestinfo import field_selector_name, resource_info, split_uri
from rbac_advisor.events import Decision, Event, ReasonRef
from rbac_advisor.rbac import (
    ALL_AUTHENTICATED,
    ALL_UNAUTHENTICATED,
    ANONYMOUS,
    NODE_PREFIX,
    Access,
    Identity,
    authenticated_identity,
)

AUTHN_GROUP = "authentication.k8s.io"
IMPERSONATE = "impersonate"
FINAL_STAGES = frozenset({"ResponseComplete", "Panic"})
STAGE_RANK = {"RequestReceived": 0, "ResponseStarted": 1, "ResponseComplete": 2, "Panic": 2}
MAX_UA = 512
_CACHE_MAX = 500_000

# 403 text written by responsewriters.Forbidden for a refused impersonation header.
_IMPERSONATE_DENIED = re.compile(
    r'^[^ ]+(?: "(?P<name>[^"]*)")? is forbidden: User "[^"]*" cannot impersonate resource '
    r'"(?P<res>[^"]+)" in API group "(?P<group>[^"]*)"(?: in the namespace "(?P<ns>[^"]*)")?'
)

_identities: dict[tuple[str, ...], Identity] = {}
_resource_accesses: dict[tuple[str, str, str, str, str, str, str], Access] = {}
_LIST_VERBS = frozenset({"list", "watch"})
_accesses: dict[tuple[str, str, str, str, str, str, str, bool], Access] = {}


def forget() -> None:
    """Let go of the interned identities and accesses once reading is over."""
    _identities.clear()
    _resource_accesses.clear()
    _accesses.clear()


class Malformed(ValueError):
    """A record that looks like an audit event but cannot be used; the text says why."""


def identity(user: str, groups: Sequence[str]) -> Identity:
    """An interned Identity with sorted, de-duplicated groups."""
    key = (user, *groups)
    ident = _identities.get(key)
    if ident is None:
        if len(_identities) >= _CACHE_MAX:
            _identities.clear()
        ident = Identity(user, tuple(sorted(set(groups))))
        _identities[key] = ident
    return ident


def access(
    verb: str,
    api_group: str = "",
    resource: str = "",
    subresource: str = "",
    namespace: str = "",
    name: str = "",
    path: str = "",
    resource_request: bool = True,
) -> Access:
    """An interned Access."""
    key = (verb, api_group, resource, subresource, namespace, name, path, resource_request)
    acc = _accesses.get(key)
    if acc is None:
        if len(_accesses) >= _CACHE_MAX:
            _accesses.clear()
        acc = Access(*key)
        _accesses[key] = acc
    return acc


def service_account(user: str) -> tuple[str, str] | None:
    """``(namespace, name)`` of a ``system:serviceaccount:NS:NAME`` user, else None."""
    return Identity(user).service_account


def effective_groups(user: str, groups: Sequence[str]) -> tuple[str, ...]:
    """Groups of an impersonated user as the impersonation filter sets them (A6).

    Service-account groups only when none were requested, then system:authenticated.
    """
    return authenticated_identity(user, groups, add_sa_groups=not groups).groups


def name_from_body(verb: str, sub: str) -> bool:
    """True when an objectRef's name came from the request body: create, no subresource.

    The authorizer never sees such a name: it has the URI's, or none.
    """
    return verb == "create" and not sub


def resource_access(
    verb: str, uri: str, group: str, resource: str, sub: str, namespace: str, name: str
) -> Access:
    """Authorizer attributes of a resource request, as the apiserver had them (A1).

    The audit objectRef is filled from the body on create (name, and namespace when the
    URL had none), so on create the URL is the authority; RBAC never sees a name on
    create (unless the URL names an object, as for subresources) or deletecollection.
    """
    u = ""
    if verb == "create":
        u = uri
        if name_from_body(verb, sub):
            name = ""  # the URI's name or none: a name from the body never counts (memo key)
    elif verb in _LIST_VERBS and not name and "fieldSelector" in uri:
        u = uri
    memo = (verb, u, group, resource, sub, namespace, name)
    acc = _resource_accesses.get(memo)
    if acc is None:
        acc = _resource_access(verb, uri, group, resource, sub, namespace, name)
        if len(_resource_accesses) >= _CACHE_MAX:
            _resource_accesses.clear()
        _resource_accesses[memo] = acc
    return acc


def _resource_access(
    verb: str, uri: str, group: str, resource: str, sub: str, namespace: str, name: str
) -> Access:
    if verb == "create":
        if uri:
            info = resource_info(split_uri(uri)[0])
            if info is not None:
                namespace, name = info.namespace, info.name
            elif name_from_body(verb, sub):
                name = ""
        elif name_from_body(verb, sub):
            name = ""
    elif verb == "deletecollection":
        name = ""
    elif verb in ("list", "watch"):
        if not name and uri:
            name = field_selector_name(split_uri(uri)[1])
    elif resource == "namespaces" and not group and not namespace and not sub:
        namespace = name  # GET /api/v1/namespaces/<ns> is attributed to namespace <ns>
    if resource == "namespaces" and not group and sub and not namespace:
        namespace = name
    return access(verb, group, resource, sub, namespace, name)


def uri_access(verb: str, uri: str) -> Access:
    """Attributes of a request known only by its URI (no objectRef)."""
    path, query = split_uri(uri)
    info = resource_info(path)
    if info is None:
        return access(verb, path=path or "/", resource_request=False)
    name = info.name
    if name_from_body(verb, info.subresource) or verb == "deletecollection":
        name = ""
    elif verb in ("list", "watch") and not name:
        name = field_selector_name(query)
    ns = info.namespace
    return resource_access(verb, "", info.api_group, info.resource, info.subresource, ns, name)


def decide(
    decision: str | None, code: int, status_reason: str, message: str
) -> tuple[Decision, bool]:
    """The decision as logged, and whether the request was refused before authorization.

    Without the annotation: 401 never reached authorization; 429 was refused by
    priority-and-fairness before it; 403 is a denial unless its message shows an
    admission refusal (authorization denials always read ``... cannot <verb> ...``).
    """
    if decision == "allow":
        return Decision.ALLOW, False
    if decision == "forbid":
        return Decision.FORBID, False
    if code == 401:
        return Decision.UNKNOWN, True
    if code == 403:
        if status_reason in ("Forbidden", "") and (not message or " cannot " in message):
            return Decision.FORBID, False
        return Decision.ALLOW, False
    if code == 429 or code == 0:
        return Decision.UNKNOWN, False
    return Decision.ALLOW, False


def denied_impersonation(message: str) -> Access | None:
    """The impersonation check a 403 message says was refused, if it says so."""
    if "cannot impersonate" not in message:
        return None
    m = _IMPERSONATE_DENIED.match(message)
    if not m:
        return None
    res, _, sub = m.group("res").partition("/")
    return access(
        IMPERSONATE, m.group("group"), res, sub, m.group("ns") or "", m.group("name") or ""
    )


def impersonation_checks(
    target: str,
    groups: Sequence[str],
    uid: str,
    extra: Mapping[str, Sequence[str]],
    constraint: str,
    request: Access,
) -> tuple[Access, ...]:
    """The authorizations the impersonation filter made for the impersonator (A6).

    Groups the apiserver fills in itself are not recorded: ``system:authenticated``
    always, a service account's own groups when they are exactly the fixed pair, and
    ``system:unauthenticated`` for anonymous. An explicitly requested
    ``system:authenticated`` is indistinguishable and so not recorded either.
    """
    sa = service_account(target)
    mode = constraint[len(IMPERSONATE) + 1 :] if constraint.startswith(IMPERSONATE + ":") else ""
    verb = constraint if mode else IMPERSONATE
    checks: list[Access] = []
    explicit = [g for g in groups if g != ALL_AUTHENTICATED]
    if sa is not None and sorted(explicit) == sorted(
        ["system:serviceaccounts", f"system:serviceaccounts:{sa[0]}"]
    ):
        explicit = []
    if target == ANONYMOUS:
        explicit = [g for g in explicit if g != ALL_UNAUTHENTICATED]
    ident_group = AUTHN_GROUP if mode else ""
    if mode in ("associated-node", "arbitrary-node") and target.startswith(NODE_PREFIX):
        checks.append(access(verb, "", "nodes", name=target[len(NODE_PREFIX) :]))
    elif sa is not None and mode in ("", "serviceaccount"):
        checks.append(access(verb, "", "serviceaccounts", namespace=sa[0], name=sa[1]))
    else:
        checks.append(access(verb, ident_group, "users", name=target))
    checks.extend(access(verb, ident_group, "groups", name=g) for g in sorted(set(explicit)))
    if uid:
        checks.append(access(verb, AUTHN_GROUP, "uids", name=uid))
    for key in sorted(extra):
        for value in sorted(set(extra[key])):
            checks.append(access(verb, AUTHN_GROUP, "userextras", key, name=value))
    if mode:
        on = f"impersonate-on:{mode}:{request.verb}"
        checks.append(
            access(
                on,
                request.api_group,
                request.resource,
                request.subresource,
                request.namespace,
                request.name,
                request.path,
                request.resource_request,
            )
        )
    return tuple(checks)


def reason_ref(reason: str | None) -> ReasonRef | None:
    """The binding an allow reason names, if it is an RBAC reason."""
    return parse_reason(reason) if reason else None


# Subresources whose WebSocket (GET) upgrade is also authorized as create since 1.35
# (AuthorizePodWebsocketUpgradeCreatePermission, on by default).
_UPGRADED = frozenset({"exec", "attach", "portforward"})


def implied_checks(
    request: Access, code: int, decision: Decision, message: str = ""
) -> tuple[tuple[Access, Decision], ...]:
    """Authorizations the apiserver made for this request beyond its own verb, decided.

    - A patch answered 201 created the object (server-side apply): the patch handler also
      authorized ``create`` with the object's name (apiserver handlers/patch.go).
    - A WebSocket ``get`` of pods/exec, attach or portforward is also authorized as
      ``create`` of the same subresource. That check runs after the authorization filter
      (whose decision the audit annotation records, for the ``get``): when it refuses,
      the response is 403 with the authorizer's ``cannot create resource "pods/exec"``.
    Only for allowed requests: a refused one shows nothing about the second check.
    """
    if decision is not Decision.ALLOW or not request.resource_request:
        return ()
    if request.verb == "patch" and code == 201:
        return ((replace(request, verb="create"), Decision.ALLOW),)
    if request.verb == "get" and request.resource == "pods" and request.subresource in _UPGRADED:
        refused = code == 403 and f'cannot create resource "pods/{request.subresource}"' in message
        return ((replace(request, verb="create"), Decision.FORBID if refused else Decision.ALLOW),)
    return ()


def make_event(
    *,
    audit_id: str,
    stage: str,
    uri: str,
    verb: str,
    user: str,
    groups: Sequence[str],
    request: Access,
    code: int,
    status_reason: str,
    message: str,
    time: float,
    decision: str | None,
    reason: str | None,
    user_agent: str,
    source_ip: str,
    imp_user: str = "",
    imp_groups: Sequence[str] = (),
    imp_uid: str = "",
    imp_extra: Mapping[str, Sequence[str]] | None = None,
    constraint: str = "",
    received: str = "",
) -> Event:
    """Assemble one Event from already-extracted fields (see module docstring)."""
    if not verb:
        raise Malformed("audit event has no verb")
    dec, _ = decide(decision, code, status_reason, message)
    authn = identity(user, groups)
    impersonator: Identity | None = None
    checks: tuple[Access, ...] = ()
    if imp_user:
        impersonator = authn
        ident = identity(imp_user, effective_groups(imp_user, imp_groups))
        checks = impersonation_checks(
            imp_user, imp_groups, imp_uid, imp_extra or {}, constraint, request
        )
    else:
        ident = authn
        if dec is Decision.FORBID and decision is None and message:
            # Refused by the impersonation filter: the request itself was never
            # authorized; the refused check is recorded, the impersonator left None.
            refused = denied_impersonation(message)
            if refused is not None:
                checks = (refused,)
    if not user and code != 401:
        raise Malformed("audit event has no user.username (only 401 responses may lack it)")
    return Event(
        audit_id=audit_id,
        identity=ident,
        access=request,
        decision=dec,
        time=time,
        code=code,
        reason=reason_ref(reason) if dec is Decision.ALLOW else None,
        raw_reason=reason or "",
        user_agent=user_agent[:MAX_UA],
        source_ip=source_ip,
        impersonator=impersonator,
        uri=redact_uri(uri),
        stage=stage,
        impersonation=checks,
        implied=implied_checks(request, code, dec, message),
        received=received,
    )

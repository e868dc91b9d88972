"""Raw audit fields to one normalised Event: the semantics every format shares. Pure.

Identity (impersonation, A6), authorizer attributes (A1), decision and reason (B3, A7) are
decided here, once, for native, EKS, AKS and GKE records alike. Values are interned so
that millions of events share a few thousand Identity and Access objects.
"""

from __future__ import annotations

import re
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import replace
from typing import TypeVar

from rbac_advisor.audit.reason import go_unquote, parse_reason
from rbac_advisor.audit.redact import redact_uri
from rbac_advisor.audit.requestinfo import field_selector_name, resource_info, split_uri
from rbac_advisor.audit.timestamps import canonical_stamp
from rbac_advisor.events import Decision, Event, ReasonRef
from rbac_advisor.rbac import (
    ALL_AUTHENTICATED,
    ALL_UNAUTHENTICATED,
    ANONYMOUS,
    NODE_PREFIX,
    Access,
    BindingKey,
    Identity,
    RoleKey,
    Subject,
    authenticated_identity,
    is_dns_subdomain,
)

AUTHN_GROUP = "authentication.k8s.io"
IMPERSONATE = "impersonate"
FINAL_STAGES = frozenset({"ResponseComplete", "Panic"})
STAGE_RANK = {"RequestReceived": 0, "ResponseStarted": 1, "ResponseComplete": 2, "Panic": 2}
MAX_UA = 512
_CACHE_MAX = 500_000
_H = TypeVar("_H", bound=Hashable)

# 403 text of a refused impersonation check (responsewriters.ForbiddenStatusError wrapped
# in apierrors.NewForbidden): ``<resource[.group]> ["<name>"] is forbidden: User "<u>"
# cannot <verb> resource "<res[/sub]>" in API group "<g>" (in the namespace "<ns>" | at
# the cluster scope)[: <reason>]``, or ``forbidden: User "<u>" cannot <verb> path "<p>"``
# for a non-resource request. Every quoted part is Go's %q. The verb is ``impersonate``
# (legacy), ``impersonate:<mode>`` or ``impersonate-on:<mode>:<request verb>``.
_GO_QUOTED = r'(?:[^"\\]|\\.)*'
_IMPERSONATE_DENIED = re.compile(
    rf'^(?:[^ ]+(?: "(?P<name>{_GO_QUOTED})")? is )?forbidden: User "{_GO_QUOTED}" '
    r"cannot (?P<verb>impersonate(?::[a-z-]+)?|impersonate-on:[a-z-]+:[^ ]*) "
    rf'(?:resource "(?P<res>{_GO_QUOTED})" in API group "(?P<group>{_GO_QUOTED})"'
    rf'(?: in the namespace "(?P<ns>{_GO_QUOTED})"| at the cluster scope)'
    rf'|path "(?P<path>{_GO_QUOTED})")',
    re.S,
)

_identities: dict[tuple[str, ...], Identity] = {}
_resource_accesses: dict[tuple[str, str, str, str, str, str, str], Access] = {}
_LIST_VERBS = frozenset({"list", "watch"})
# Keyed by the Access itself: a tuple of its fields as the key would double what each
# distinct access costs while reading (hundreds of thousands on a long log).
_accesses: dict[Access, Access] = {}
# Reasons interned by value: parse_reason's cache holds only the latest few thousand texts,
# and a reason parsed again must still be the same object (tables of uses index parts by
# identity, so a second object would be a second part, and its uses second rows).
_reasons: dict[ReasonRef, ReasonRef] = {}
# The bindings and roles of reasons, one object per value: many reasons name one of each.
_bindings: dict[BindingKey, BindingKey] = {}
_roles: dict[RoleKey, RoleKey] = {}
# Sorted group lists, one tuple per value: many users share their groups.
_groups: dict[tuple[str, ...], tuple[str, ...]] = {}
# Strings that repeat across identities and accesses (groups, verbs, API groups, resources,
# namespaces), one object per value: each decoded record brings its own copies.
_strings: dict[str, str] = {}


def _interned(table: dict[_H, _H], value: _H) -> _H:
    """The value in ``table`` equal to ``value``, which it becomes if there is none."""
    shared = table.get(value)
    if shared is None:
        if len(table) >= _CACHE_MAX:
            table.clear()
        shared = table[value] = value
    return shared


def _one(s: str) -> str:
    """The interned string equal to ``s``."""
    return _interned(_strings, s)


def forget() -> None:
    """Let go of the interned identities, accesses and reasons once reading is over."""
    _identities.clear()
    _resource_accesses.clear()
    _accesses.clear()
    _reasons.clear()
    _bindings.clear()
    _roles.clear()
    _groups.clear()
    _strings.clear()


class Malformed(ValueError):
    """A record that looks like an audit event but cannot be used; the text says why."""


def identity(user: str, groups: Sequence[str]) -> Identity:
    """An interned Identity with sorted, de-duplicated groups."""
    key = (user, *groups)
    ident = _identities.get(key)
    if ident is None:
        if len(_identities) >= _CACHE_MAX:
            _identities.clear()
        shared = tuple(map(_one, groups))  # kept by the key and the Identity
        ident = Identity(user, _interned(_groups, tuple(sorted(set(shared)))))
        _identities[(user, *shared)] = ident
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
    acc = Access(verb, api_group, resource, subresource, namespace, name, path, resource_request)
    shared = _accesses.get(acc)
    if shared is None:
        if len(_accesses) >= _CACHE_MAX:
            _accesses.clear()
        one = _one
        shared = Access(
            one(verb),
            one(api_group),
            one(resource),
            one(subresource),
            one(namespace),
            name,
            path,
            resource_request,
        )
        _accesses[shared] = shared
    return shared


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
    On list and watch the objectRef's name is the one the authorizer had (the selector's,
    when it narrowed the request): the apiserver writes it from the request's attributes.
    """
    u = ""
    if verb == "create":
        u = uri
        if name_from_body(verb, sub):
            name = ""  # the URI's name or none: a name from the body never counts (memo key)
    memo = (verb, u, group, resource, sub, namespace, name)
    acc = _resource_accesses.get(memo)
    if acc is None:
        acc = _resource_access(verb, uri, group, resource, sub, namespace, name)
        if len(_resource_accesses) >= _CACHE_MAX:
            _resource_accesses.clear()
        one = _one  # the key is kept: its repeated strings held once
        _resource_accesses[
            (one(verb), u, one(group), one(resource), one(sub), one(namespace), name)
        ] = acc
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
    elif verb in _LIST_VERBS and not name and not info.special_verb:
        # Without an objectRef (whose name is the authorizer's), the name a selector
        # narrows a list to, unless the verb came from a /watch/ path.
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


def _unquoted(parts: Sequence[str | None]) -> tuple[str, ...] | None:
    """Quoted parts of a refusal message, unescaped; "" for a part that is absent."""
    out: list[str] = []
    for part in parts:
        text = go_unquote(part) if part else ""
        if text is None:
            return None
        out.append(text)
    return tuple(out)


def denied_impersonation(message: str) -> Access | None:
    """The impersonation check a 403 message says was refused, if it says so.

    Legacy and constrained impersonation alike: the apiserver tries every mode and answers
    with the first refusal, whose authorizer attributes the message spells out (verb
    ``impersonate``, ``impersonate:<mode>`` or ``impersonate-on:<mode>:<verb>``).
    """
    if "cannot impersonate" not in message:
        return None
    m = _IMPERSONATE_DENIED.match(message)
    if not m:
        return None
    fields = _unquoted(m.group("res", "group", "ns", "name", "path"))
    if fields is None:
        return None
    res_sub, group, ns, name, path = fields
    if m.group("path") is not None:
        return access(m.group("verb"), path=path, resource_request=False)
    res, _, sub = res_sub.partition("/")
    return access(m.group("verb"), group, res, sub, ns, name)


_NODE_MODES = frozenset({"associated-node", "arbitrary-node"})
# Modes whose filter admits nothing but a username (mode.go onlyUsernameSet): the groups
# are the apiserver's own and no group, uid or extra check is made.
_USERNAME_ONLY_MODES = _NODE_MODES | {"serviceaccount"}


def _node_username(user: str) -> str | None:
    """The node name of ``system:node:<name>`` when it is a valid one (isNodeUsername)."""
    if not user.startswith(NODE_PREFIX):
        return None
    name = user[len(NODE_PREFIX) :]
    return name if is_dns_subdomain(name) else None


def _username_check(target: str, verb: str, mode: str) -> Access:
    """The check of the impersonated username (mode.go authorizeUsername).

    Constrained modes ask it under authentication.k8s.io whatever the resource. There a
    valid node username is checked as ``nodes`` (associated-node with name ``*``: its
    cached decision holds for every node), in every mode a valid service-account username
    as ``serviceaccounts``, anything else as ``users``.
    """
    group = AUTHN_GROUP if mode else ""
    node = _node_username(target) if mode else None
    if node is not None:
        return access(verb, group, "nodes", name="*" if mode == "associated-node" else node)
    sa = service_account(target)
    if sa is not None:
        return access(verb, group, "serviceaccounts", namespace=sa[0], name=sa[1])
    return access(verb, group, "users", name=target)


def requested_groups(target: str, groups: Sequence[str]) -> list[str]:
    """The groups of an impersonated user as logged, less the one the apiserver added (A6).

    Once the requested groups are checked, the impersonation filter appends one group when
    it is absent: ``system:unauthenticated`` for ``system:anonymous``, otherwise
    ``system:authenticated`` unless ``system:unauthenticated`` was requested. So an added
    group is the last one and appears once; the same group anywhere else, or twice, was
    requested and checked. One requested last, alone, reads as the added one: the log
    cannot tell them apart, and it is not recorded.
    """
    out = list(groups)
    added = ALL_UNAUTHENTICATED if target == ANONYMOUS else ALL_AUTHENTICATED
    if (
        out
        and out[-1] == added
        and out.count(added) == 1
        and (target == ANONYMOUS or ALL_UNAUTHENTICATED not in out)
    ):
        out.pop()
    return out


def _field_checks(
    target: str,
    groups: Sequence[str],
    uid: str,
    extra: Mapping[str, Sequence[str]],
    verb: str,
    mode: str,
) -> list[Access]:
    """The checks of the requested groups, uid and extra values, one per value.

    Groups the apiserver fills in itself are not recorded (:func:`requested_groups`), nor
    a service account's own groups when they are exactly the pair it fills in, in its order.

    With four or more groups (or extra values) a constrained mode first asks for them all
    at once (name ``*``; for userextras subresource and name ``*``) and skips the single
    checks when that is allowed. The log does not say whether it was, so the single checks
    are recorded: granting exactly those keeps the request working (the ``*`` check fails,
    each single one passes) without allowing every group or extra value.
    """
    sa = service_account(target)
    explicit = requested_groups(target, groups)
    if sa is not None and explicit == ["system:serviceaccounts", f"system:serviceaccounts:{sa[0]}"]:
        explicit = []  # as serviceaccount.MakeGroupNames writes them, in this order
    group = AUTHN_GROUP if mode else ""
    checks = [access(verb, group, "groups", name=g) for g in sorted(set(explicit))]
    if uid:
        checks.append(access(verb, AUTHN_GROUP, "uids", name=uid))
    for key in sorted(extra):
        for value in sorted(set(extra[key])):
            checks.append(access(verb, AUTHN_GROUP, "userextras", key, name=value))
    return checks


def impersonation_checks(
    target: str,
    groups: Sequence[str],
    uid: str,
    extra: Mapping[str, Sequence[str]],
    constraint: str,
    request: Access,
) -> tuple[Access, ...]:
    """The authorizations the impersonation filter made for the impersonator (A6).

    Legacy impersonation (no constraint) asks verb ``impersonate`` for each part of the
    identity. A constrained mode (the audit's ``impersonate:<mode>`` constraint) asks that
    verb for the identity and ``impersonate-on:<mode>:<verb>`` for the request itself; the
    node and serviceaccount modes check the username alone.
    """
    mode = constraint[len(IMPERSONATE) + 1 :] if constraint.startswith(IMPERSONATE + ":") else ""
    verb = constraint if mode else IMPERSONATE
    checks = [_username_check(target, verb, mode)]
    if mode not in _USERNAME_ONLY_MODES:
        checks.extend(_field_checks(target, groups, uid, extra, verb, mode))
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
    """The binding an allow reason names, if it is an RBAC reason (interned).

    Its binding and role are interned too, and the subject's kind, namespace and group:
    many reasons name one binding of one role (one subject each), and a log with a binding
    per service account holds a reason per subject.
    """
    ref = parse_reason(reason) if reason else None
    if ref is None:
        return None
    shared = _reasons.get(ref)
    if shared is None:
        b, r, s = ref.binding, ref.role, ref.subject
        one = _one
        shared = ReasonRef(
            _interned(_bindings, b),
            _interned(_roles, r),
            Subject(one(s.kind), s.name, one(s.namespace), one(s.api_group)),
        )
        _interned(_reasons, shared)
    return shared


# Subresources whose WebSocket (GET) upgrade is also authorized as create since 1.35
# (AuthorizePodWebsocketUpgradeCreatePermission, on by default).
_UPGRADED = frozenset({"exec", "attach", "portforward"})
# Verbs whose handler authorizes ``create`` too when the object did not exist (answer 201).
_CREATING_VERBS = frozenset({"patch", "update"})


def implied_checks(
    request: Access, code: int, decision: Decision, message: str = ""
) -> tuple[tuple[Access, Decision], ...]:
    """Authorizations the apiserver made for this request beyond its own verb, decided.

    - A patch or update answered 201 created the object (server-side apply, or a PUT to a
      resource that allows create on update, such as leases): the handler also authorized
      ``create`` with the object's name (apiserver handlers/patch.go, update.go).
    - A WebSocket ``get`` of pods/exec, attach or portforward is also authorized as
      ``create`` of the same subresource. That check runs after the authorization filter
      (whose decision the audit annotation records, for the ``get``): when it refuses,
      the response is 403 with the authorizer's ``cannot create resource "pods/exec"``.
    Only for allowed requests: a refused one shows nothing about the second check.
    """
    if decision is not Decision.ALLOW or not request.resource_request:
        return ()
    if request.verb in _CREATING_VERBS and code == 201:
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
    """Assemble one Event from already-extracted fields (see module docstring).

    The verb may be empty: the apiserver authorizes a resource request made with another
    HTTP method than it maps (OPTIONS, TRACE...) with verb "" and logs it so.
    """
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
        received=canonical_stamp(received),
    )

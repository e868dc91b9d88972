"""Offline ``kubectl auth can-i``: one question to the RBAC authorizer, with the reason. Pure.

The question is built like the request the apiserver would see: cluster-scoped resources
are asked at cluster scope, ``namespaces NAME`` in namespace NAME (requestinfo.go), and the
impersonated identity gets the groups the impersonation filter adds.
"""

from __future__ import annotations

from dataclasses import dataclass

from rbac_advisor.apiresources import lookup, split_resource_arg
from rbac_advisor.authorizer import Authorizer
from rbac_advisor.errors import InputError
from rbac_advisor.rbac import (
    Access,
    Grant,
    Identity,
    Request,
    authenticated_identity,
)
from rbac_advisor.replay import is_node


@dataclass(frozen=True, slots=True)
class Question:
    """What ``can-i`` was asked, as typed on the command line."""

    verb: str
    resource: str
    name: str = ""
    namespace: str = "default"
    all_namespaces: bool = False
    user: str = ""
    groups: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Answer:
    """The authorizer's answer and how it got there.

    Attributes:
        allowed: yes or no.
        identity: the identity asked about, with the groups authentication adds.
        access: the request attributes asked about.
        grants: every RBAC grant that allows it, first one being the apiserver's reason.
        privileged: allowed because the identity is in ``system:masters``.
        notes: things worth saying about the question (assumed group, Node authorizer).
    """

    allowed: bool
    identity: Identity
    access: Access
    grants: tuple[Grant, ...] = ()
    privileged: bool = False
    notes: tuple[str, ...] = ()

    def reason(self) -> str:
        """The reason the apiserver would give (empty for system:masters and denials)."""
        return self.grants[0].reason() if self.grants else ""


def identity_for(user: str, groups: tuple[str, ...]) -> Identity:
    """The identity ``--as USER --as-group G...`` is authorized as.

    As the impersonation filter: a service account gets its groups only when no group was
    requested; everyone but ``system:anonymous`` gets ``system:authenticated``.
    """
    return authenticated_identity(user, groups, add_sa_groups=not groups)


def access_for(q: Question) -> tuple[Access, list[str]]:
    """Request attributes for a question, plus notes about assumptions made.

    Raises:
        InputError: a non-resource URL with a name or subresource, or an empty resource.
    """
    notes: list[str] = []
    if q.resource.startswith("/"):
        if q.name:
            raise InputError(f"a non-resource URL takes no NAME (got {q.name!r})")
        return Access(verb=q.verb, path=q.resource, resource_request=False), notes
    resource_part, _, sub = q.resource.partition("/")
    if not resource_part:
        raise InputError(f"RESOURCE must name a resource, got {q.resource!r}")
    name, group = split_resource_arg(resource_part)
    namespace = "" if q.all_namespaces else q.namespace
    if name == "*":
        return Access(q.verb, group or "", "*", sub, namespace, q.name), notes
    known = lookup(name, group)
    if known is not None:
        name, group = known.name, known.group
        if not known.namespaced:
            namespace = q.name if name == "namespaces" and q.name else ""
    elif group is None:
        group = ""
        notes.append(
            f'"{name}" is not a built-in resource; assuming the core API group '
            "(write RESOURCE.GROUP to name another)"
        )
    return Access(q.verb, group or "", name, sub, namespace, q.name), notes


def ask(authorizer: Authorizer, q: Question) -> Answer:
    """Answer one question against the snapshot behind ``authorizer``."""
    identity = identity_for(q.user, q.groups)
    access, notes = access_for(q)
    if identity.privileged:
        notes.append("system:masters members are allowed everything before RBAC is consulted")
        return Answer(True, identity, access, privileged=True, notes=tuple(notes))
    decision = authorizer.decide(Request(identity, access))
    if not decision.allowed and is_node(identity):
        notes.append("the Node authorizer, which runs before RBAC, may still allow a node")
    return Answer(decision.allowed, identity, access, decision.grants, notes=tuple(notes))

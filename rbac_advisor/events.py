"""The normalised audit event: one record per API request, whatever the log format.

Pure values only. Parsers in ``audit`` produce these; ``usage`` aggregates them.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from rbac_advisor.rbac import Access, BindingKey, Identity, RoleKey, Subject


class Decision(enum.StrEnum):
    """The authorization decision as logged (``unknown`` when the log does not say)."""

    ALLOW = "allow"
    FORBID = "forbid"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True, order=True)
class ReasonRef:
    """An ``RBAC: allowed by ...`` reason string, parsed."""

    binding: BindingKey
    role: RoleKey
    subject: Subject


@dataclass(frozen=True, slots=True)
class Event:
    """One API request as the authorizer saw it.

    ``identity`` is the effective (impersonated, if any) user; ``impersonator`` the
    authenticated one when impersonation was used; ``impersonation`` lists the extra
    authorizations the apiserver made for the impersonator (verb ``impersonate`` on users,
    serviceaccounts, groups, uids, userextras), allowed when ``impersonator`` is set; with
    ``impersonator`` None they are the check the impersonation filter refused (403), and
    the request itself never reached authorization. ``uri`` is the request URI with
    exec/attach ``command=`` arguments redacted. ``received`` is the logged
    ``requestReceivedTimestamp`` as written, the same in every stage of one request (part of
    its key: a client may reuse an audit ID). Bodies are never kept.
    """

    audit_id: str
    identity: Identity
    access: Access
    decision: Decision
    time: float
    code: int = 0
    reason: ReasonRef | None = None
    raw_reason: str = ""
    user_agent: str = ""
    source_ip: str = ""
    impersonator: Identity | None = None
    uri: str = ""
    stage: str = ""
    impersonation: tuple[Access, ...] = ()
    implied: tuple[tuple[Access, Decision], ...] = ()
    received: str = ""

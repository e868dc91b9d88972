"""The ``authorization.k8s.io/reason`` annotation, parsed. Pure: no I/O.

Formats written by the RBAC authorizer (plugin/pkg/auth/authorizer/rbac/rbac.go and
pkg/registry/rbac/validation/rule.go, describe functions):
``RBAC: allowed by ClusterRoleBinding "<crb>" of ClusterRole "<role>" to <subject>`` and
``RBAC: allowed by RoleBinding "<rb>/<ns>" of <Role|ClusterRole> "<role>" to <subject>``,
where the subject is ``User "<u>"``, ``Group "<g>"`` or ``ServiceAccount "<name>/<ns>"``.
"""

from __future__ import annotations

import re
from functools import lru_cache

from rbac_advisor.events import ReasonRef
from rbac_advisor.rbac import (
    RBAC_GROUP,
    BindingKey,
    BindingKind,
    RoleKey,
    RoleKind,
    Subject,
    SubjectKind,
)

_REASON = re.compile(
    r'RBAC: allowed by (ClusterRoleBinding|RoleBinding) "([^"]+)" of (ClusterRole|Role) '
    r'"([^"]+)" to (User|Group|ServiceAccount) "([^"]*)"'
)


@lru_cache(maxsize=8192)
def parse_reason(text: str) -> ReasonRef | None:
    """Parse an RBAC allow reason; None for anything else (empty, other authorizers).

    >>> parse_reason('RBAC: allowed by RoleBinding "rb/ns1" of Role "r" to User "bob"').binding
    BindingKey(kind=<BindingKind.ROLE_BINDING: 'RoleBinding'>, name='rb', namespace='ns1')
    """
    if not text.startswith("RBAC: allowed by "):
        return None
    m = _REASON.match(text)
    if not m:
        return None
    bkind, bname, rkind, rname, skind, sname = m.groups()
    namespace = ""
    if bkind == BindingKind.ROLE_BINDING:
        bname, sep, namespace = bname.rpartition("/")
        if not sep or not bname or not namespace:
            return None
    elif rkind == RoleKind.ROLE:
        return None  # a ClusterRoleBinding cannot reference a Role
    binding = BindingKey(BindingKind(bkind), bname, namespace)
    role = RoleKey(RoleKind(rkind), rname, namespace if rkind == RoleKind.ROLE else "")
    if skind == SubjectKind.SERVICE_ACCOUNT:
        sa_name, sep, sa_ns = sname.partition("/")
        if not sep or not sa_name or not sa_ns:
            return None
        subject = Subject(SubjectKind.SERVICE_ACCOUNT, sa_name, sa_ns)
    else:
        subject = Subject(skind, sname, "", RBAC_GROUP)
    return ReasonRef(binding, role, subject)

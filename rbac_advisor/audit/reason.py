r"""The ``authorization.k8s.io/reason`` annotation, parsed. Pure: no I/O.

Formats written by the RBAC authorizer (plugin/pkg/auth/authorizer/rbac/rbac.go and
pkg/registry/rbac/validation/rule.go, describe functions):
``RBAC: allowed by ClusterRoleBinding "<crb>" of ClusterRole "<role>" to <subject>`` and
``RBAC: allowed by RoleBinding "<rb>/<ns>" of <Role|ClusterRole> "<role>" to <subject>``,
where the subject is ``User "<u>"``, ``Group "<g>"`` or ``ServiceAccount "<name>/<ns>"``.
Every quoted part is Go's ``%q``: a ``"`` or ``\`` in a name is escaped, and so are
unprintable characters.
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

_QUOTED = r'"((?:[^"\\]|\\.)*)"'
_REASON = re.compile(
    rf"RBAC: allowed by (ClusterRoleBinding|RoleBinding) {_QUOTED} of (ClusterRole|Role) "
    rf"{_QUOTED} to (User|Group|ServiceAccount) {_QUOTED}",
    re.S,
)
_ESCAPE = re.compile(r"\\(x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|.)", re.S)
_SIMPLE = {"a": 7, "b": 8, "f": 12, "n": 10, "r": 13, "t": 9, "v": 11, "\\": 92, '"': 34}


def go_unquote(text: str) -> str | None:
    r"""The string Go's ``%q`` wrote as ``"text"`` (``text`` without the quotes).

    None when ``text`` holds an escape ``%q`` never writes.

    >>> go_unquote(r'ops\\team \"x\" caf\u00e9 \x01')
    'ops\\team "x" café \x01'
    """
    if "\\" not in text:
        return text
    out = bytearray()
    pos = 0
    for m in _ESCAPE.finditer(text):
        out += text[pos : m.start()].encode("utf-8", "surrogatepass")
        esc = m.group(1)
        if esc[0] == "x" and len(esc) == 3:
            out.append(int(esc[1:], 16))  # one byte (of an invalid UTF-8 sequence)
        elif esc[0] in "uU" and len(esc) > 1:
            code = int(esc[1:], 16)
            if code > 0x10FFFF:
                return None
            out += chr(code).encode("utf-8", "surrogatepass")
        elif esc in _SIMPLE:
            out.append(_SIMPLE[esc])
        else:
            return None
        pos = m.end()
    out += text[pos:].encode("utf-8", "surrogatepass")
    return out.decode("utf-8", "replace")


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
    bkind, bname_q, rkind, rname_q, skind, sname_q = m.groups()
    bname, rname, sname = go_unquote(bname_q), go_unquote(rname_q), go_unquote(sname_q)
    if bname is None or rname is None or sname is None or not bname or not rname:
        return None
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

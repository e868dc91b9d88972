"""Roles and bindings -> multi-document YAML for ``kubectl apply -f`` / ``delete -f``.

Pure: returns text. Keys in manifest order, deterministic bytes.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import yaml

from rbac_advisor.manifests import rule_to_manifest, to_manifest
from rbac_advisor.rbac import Binding, PolicyRule, Role


def object_dict(obj: Role | Binding) -> dict[str, Any]:
    """A Role/ClusterRole/RoleBinding/ClusterRoleBinding as a manifest dict."""
    return to_manifest(obj)


def rule_dict(rule: PolicyRule) -> dict[str, Any]:
    """A PolicyRule as the API writes it (empty lists omitted)."""
    return dict(rule_to_manifest(rule))


def render(objects: Iterable[Role | Binding], header: str = "") -> str:
    """Multi-document YAML; an empty set renders as a comment only (valid for kubectl)."""
    docs = [
        yaml.safe_dump(object_dict(o), sort_keys=False, default_flow_style=False, width=100)
        for o in objects
    ]
    prefix = "".join(f"# {line}\n" for line in header.splitlines())
    if not docs:
        return prefix + "# nothing to do\n"
    return prefix + "---\n".join(docs)

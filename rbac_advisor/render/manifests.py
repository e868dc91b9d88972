"""Roles and bindings -> multi-document YAML for ``kubectl apply -f`` / ``delete -f``.

Pure: returns text. Keys in manifest order, deterministic bytes.
"""

from __future__ import annotations

from collections.abc import Iterable

import yaml

from rbac_advisor.manifests import to_manifest
from rbac_advisor.rbac import Binding, Role


def render(objects: Iterable[Role | Binding], header: str = "") -> str:
    """Multi-document YAML with ``header`` as comments.

    An empty set renders as comments only; kubectl refuses such a file ("no objects passed"),
    which is why the CLI says when there is nothing to apply or delete.
    """
    docs = [
        yaml.safe_dump(to_manifest(o), sort_keys=False, default_flow_style=False, width=100)
        for o in objects
    ]
    prefix = "".join(f"# {line}\n" for line in header.splitlines())
    if not docs:
        return prefix + "# nothing to do\n"
    return prefix + "---\n".join(docs)

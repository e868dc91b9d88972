"""AKS diagnostic-setting records (``properties.log`` holds a native event). Pure: no I/O.

``properties.log`` is an escaped JSON string in Event Hub and storage exports, an object
in some pipelines. Category ``kube-audit-admin`` leaves out get and list requests.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from rbac_advisor.audit import jsonvalue
from rbac_advisor.audit.normalise import Malformed

CATEGORIES = frozenset({"kube-audit", "kube-audit-admin"})
ADMIN_ONLY_MISSING = "get/list requests (category kube-audit-admin)"


def is_aks(d: Mapping[str, Any]) -> bool:
    """True for an Azure resource-log record (Kubernetes audit or another category)."""
    return isinstance(d.get("category"), str) and (
        "properties" in d or "operationName" in d or "resourceId" in d
    )


def inner_event(d: Mapping[str, Any]) -> dict[str, Any] | None:
    """The native event inside a record; None for categories other than the audit ones.

    Raises:
        Malformed: an audit-category record without a readable ``properties.log``.
    """
    if d.get("category") not in CATEGORIES:
        return None
    props = d.get("properties")
    if not isinstance(props, dict):
        raise Malformed(f"AKS {d.get('category')} record has no properties object")
    log = props.get("log")
    if isinstance(log, str):
        try:
            log = jsonvalue.loads(log)
        except orjson.JSONDecodeError as err:
            raise Malformed(f"properties.log is not JSON: {err}") from None
    if not isinstance(log, dict):
        raise Malformed("properties.log must be a JSON object or a string holding one")
    return log

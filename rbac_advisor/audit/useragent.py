"""User-Agent strings to a short tool name and version. Pure: no I/O.

client-go writes ``<argv0>/<version> (<os>/<arch>) kubernetes/<commit>`` (rest/config.go
DefaultKubernetesUserAgent); controllers running with per-controller credentials append
``/system:serviceaccount:...``. Other clients use their own product tokens.
"""

from __future__ import annotations

import re
from functools import lru_cache

_TOKEN = re.compile(r"\s*([^/\s(]+)(?:/([^\s(]*))?")
_SAFE = re.compile(r"[^a-z0-9._+-]+")
_SAFE_VERSION = re.compile(r"[^A-Za-z0-9._+-]+")
MAX_TOOL = 40

# Product tokens that name a family rather than a tool, and what we call the tool.
_ALIASES = {
    "mozilla": "browser",
    "openapi-generator": "kubernetes-python",
    "hashicorp": "terraform",
    "terraform": "terraform",
    "kubectl.exe": "kubectl",
    "oc": "oc",
}
_PREFIXES = (
    ("argocd-", "argocd"),
    ("terraform-provider-", "terraform"),
)


@lru_cache(maxsize=4096)
def parse(user_agent: str) -> tuple[str, str]:
    """Return ``(tool, version)``; ``tool`` is a short lower-case product name, "" if unknown.

    >>> parse("kubectl/v1.36.3 (linux/amd64) kubernetes/abc1234")
    ('kubectl', 'v1.36.3')
    >>> parse("Mozilla/5.0 (X11; Linux x86_64)")
    ('browser', '')
    """
    m = _TOKEN.match(user_agent)
    if not m:
        return "", ""
    product = m.group(1).lower()
    version = m.group(2) or ""
    if product in ("mozilla", "hashicorp"):
        version = ""
        if product == "hashicorp":
            tf = re.search(r"Terraform/([^\s]+)", user_agent)
            version = tf.group(1) if tf else ""
    elif "/" in version and product != "openapi-generator":
        version = version.split("/", 1)[0]
    if product == "openapi-generator":
        version = version.split("/", 1)[0]
    tool = _ALIASES.get(product)
    if tool is None:
        tool = product
        for prefix, name in _PREFIXES:
            if product.startswith(prefix):
                tool = name
                break
        if tool.endswith(".exe"):
            tool = tool[:-4]
    tool = _SAFE.sub("-", tool).strip("-")[:MAX_TOOL]
    return tool, _SAFE_VERSION.sub("-", version).strip("-")[:MAX_TOOL]


def tool(user_agent: str) -> str:
    """The tool name alone (see :func:`parse`)."""
    return parse(user_agent)[0]


@lru_cache(maxsize=4096)
def label(user_agent: str) -> str:
    """``tool/version`` (``kubectl/v1.36.3``), the tool alone without a version, "" unknown.

    What the usage model records per use: reviews see which client versions were used.

    >>> label("kubectl/v1.36.3 (linux/amd64) kubernetes/abc1234")
    'kubectl/v1.36.3'
    >>> label("Mozilla/5.0 (X11; Linux x86_64)")
    'browser'
    """
    name, version = parse(user_agent)
    return f"{name}/{version}" if name and version else name


def name_of(tool_label: str) -> str:
    """The tool name of a :func:`label` (``kubectl`` for ``kubectl/v1.36.3``)."""
    return tool_label.partition("/")[0]

"""Redaction of secrets that clients put in request URIs. Pure: no I/O.

``kubectl exec`` and ``attach`` send the command line as ``command=`` query arguments;
passwords and tokens typed there must never reach a saved model or a report.
"""

from __future__ import annotations

import re
from urllib.parse import unquote_plus

REDACTED = "REDACTED"
# A request URI has no fragment: Go's ParseRequestURI keeps "#" in the query, and a
# value ends only at "&".
_PARAM = re.compile(r"(?<=[?&])([^=&]*)=([^&]*)")


def may_need_redaction(uri: str) -> bool:
    """False when :func:`redact_uri` certainly returns ``uri`` unchanged (a quick test)."""
    return "command=" in uri or "%" in uri


def _redact(m: re.Match[str]) -> str:
    key = m.group(1)
    if key == "command" or ("%" in key and unquote_plus(key) == "command"):
        return f"{key}={REDACTED}"
    return m.group(0)


def redact_uri(uri: str) -> str:
    """Replace the value of every ``command`` query argument with ``REDACTED``.

    The apiserver decodes parameter names as Go's ``url.ParseQuery`` does, so an encoded
    name (``comm%61nd=``) is a command argument too.

    >>> redact_uri("/api/v1/namespaces/a/pods/p/exec?command=sh&command=-c&stdin=true")
    '/api/v1/namespaces/a/pods/p/exec?command=REDACTED&command=REDACTED&stdin=true'
    >>> redact_uri("/api/v1/namespaces/a/pods/p/exec?%63ommand=id&comm%61nd=x")
    '/api/v1/namespaces/a/pods/p/exec?%63ommand=REDACTED&comm%61nd=REDACTED'
    """
    if not may_need_redaction(uri):
        return uri
    return _PARAM.sub(_redact, uri)

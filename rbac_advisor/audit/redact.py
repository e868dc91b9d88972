"""Redaction of secrets that clients put in request URIs. Pure: no I/O.

``kubectl exec`` and ``attach`` send the command line as ``command=`` query arguments;
passwords and tokens typed there must never reach a saved model or a report.
"""

from __future__ import annotations

import re

REDACTED = "REDACTED"
_COMMAND = re.compile(r"(?<=[?&])command=[^&#]*")


def redact_uri(uri: str) -> str:
    """Replace the value of every ``command=`` query argument with ``REDACTED``.

    >>> redact_uri("/api/v1/namespaces/a/pods/p/exec?command=sh&command=-c&stdin=true")
    '/api/v1/namespaces/a/pods/p/exec?command=REDACTED&command=REDACTED&stdin=true'
    """
    if "command=" not in uri:
        return uri
    return _COMMAND.sub("command=" + REDACTED, uri)

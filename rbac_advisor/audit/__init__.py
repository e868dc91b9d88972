"""Audit logs to normalised Events: every supported format, one record per request. Pure.

Parses text it is given; never opens files (``logfiles`` does). ``parse_blocks`` yields
Events from blocks of numbered lines; ``Deduper`` collapses the stages of one request.
"""

from __future__ import annotations

from rbac_advisor.audit.dedupe import Deduper, request_key
from rbac_advisor.audit.normalise import Malformed
from rbac_advisor.audit.records import Parsed, parse_record
from rbac_advisor.audit.stream import Block, SourceStats, parse_blocks, parse_lines

__all__ = [
    "Block",
    "Deduper",
    "Malformed",
    "Parsed",
    "SourceStats",
    "parse_blocks",
    "parse_lines",
    "parse_record",
    "request_key",
]

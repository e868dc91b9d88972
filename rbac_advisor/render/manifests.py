"""Roles and bindings -> multi-document YAML for ``kubectl apply -f`` / ``delete -f``.

Pure: returns text. Keys in manifest order, deterministic bytes.

Every string that some YAML reader could take for another type is quoted: kubectl reads YAML
with Go's resolver (yaml.v2: YAML 1.1 words and timestamps, Go number syntax), other tools use
YAML 1.2 or 1.1, and a resourceName ``12e4`` read as a number makes the apply fail.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import yaml

from rbac_advisor.manifests import to_manifest
from rbac_advisor.rbac import Binding, Role

# Plain scalars that YAML 1.1, YAML 1.2 (core schema) or Go's yaml.v2/v3 may resolve to a
# number, bool, null, timestamp, merge key or value key. Deliberately broad: a needless quote
# costs nothing, a missing one changes the type.
_NUMBER = re.compile(  # matched with every "_" removed, as Go does ("+_1" is 1)
    r"""
    [-+]?(?:
        [0-9]+                                      # decimal; 012 is octal to 1.1 and Go
      | 0b[01]* | 0o[0-7]* | 0x[0-9a-f]*            # binary, octal, hex
      | [0-9]+(?::[0-5]?[0-9])+(?:\.[0-9]*)?        # sexagesimal 1:30, 1:30.5 (1.1)
      | [0-9]*\.[0-9.]*(?:e[-+]?[0-9]+)?            # .5, 1., 1.5e3, 1.2.3 (1.1)
      | [0-9]+e[-+]?[0-9]+                          # 1e3, 12E4, -1e-3 (1.2, Go)
      | \.(?:inf|nan)                               # .inf, -.Inf, .NaN
    )
    """,
    re.VERBOSE | re.IGNORECASE,
)
_WORD = re.compile(
    r"""
      y | yes | n | no | true | false | on | off    # 1.1 and 1.2 booleans
    | null | ~ | << | =                             # null; merge and value keys (1.1)
    | [0-9]{4}-[0-9]{1,2}-[0-9]{1,2}                # timestamps: 2001-12-14,
      (?:(?:t|[ \t]+)[0-9:.+z \t-]*)?              # 2001-12-14T21:59:43.10-05:00
    """,
    re.VERBOSE | re.IGNORECASE,
)


def needs_quotes(value: str) -> bool:
    """True when ``value`` written plain could be read back as something other than a string."""
    return (
        not value
        or _WORD.fullmatch(value) is not None
        or _NUMBER.fullmatch(value.replace("_", "")) is not None
    )


class _Dumper(yaml.SafeDumper):
    """SafeDumper that single-quotes every string another YAML reader could retype."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    """A str scalar: single-quoted when ambiguous, otherwise as SafeDumper would write it."""
    return dumper.represent_scalar(
        "tag:yaml.org,2002:str", value, style="'" if needs_quotes(value) else None
    )


_Dumper.add_representer(str, _represent_str)


def dump(document: object) -> str:
    """One YAML document: keys in the given order, block style, ambiguous strings quoted."""
    return yaml.dump(document, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=100)


def render(objects: Iterable[Role | Binding], header: str = "") -> str:
    """Multi-document YAML with ``header`` as comments.

    An empty set renders as comments only; kubectl refuses such a file ("no objects passed"),
    which is why the CLI says when there is nothing to apply or delete.
    """
    docs = [dump(to_manifest(o)) for o in objects]
    prefix = "".join(f"# {line}\n" for line in header.splitlines())
    if not docs:
        return prefix + "# nothing to do\n"
    return prefix + "---\n".join(docs)

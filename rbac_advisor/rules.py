"""Minimal covering rules for a set of observed requests, compacted. Pure: no I/O.

Like audit2rbac's compaction: one atom per (group, resource, names) with its verbs, then
resources merged when verbs and names agree, then groups merged when the rest agrees.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from rbac_advisor.rbac import Access, PolicyRule

NAMELESS_VERBS = frozenset({"create", "deletecollection"})


@dataclass(frozen=True, slots=True)
class Need:
    """One request the rules must allow; ``names_required`` when only named rules allowed it."""

    access: Access
    names_required: bool = False


def minimal_rules(
    needs: Iterable[Need], extra: Iterable[PolicyRule] = (), max_names: int = 5
) -> tuple[PolicyRule, ...]:
    """The smallest compacted rules allowing every need, plus ``extra`` atoms kept as they are.

    Names are used only where the authorizer sees them: never for create or
    deletecollection, on a (group, resource, verb) only when every request named an object,
    and only up to ``max_names`` names (unless the original grant itself was name-limited).
    """
    named: dict[tuple[str, str, str], set[str]] = defaultdict(set)
    unnamed: set[tuple[str, str, str]] = set()
    forced: dict[tuple[str, str, str], set[str]] = defaultdict(set)
    urls: dict[str, set[str]] = defaultdict(set)
    for n in needs:
        a = n.access
        if not a.resource_request:
            urls[a.path].add(a.verb)
            continue
        k = (a.api_group, a.combined_resource, a.verb)
        if n.names_required and a.name:
            forced[k].add(a.name)
        elif a.name and a.verb not in NAMELESS_VERBS:
            named[k].add(a.name)
        else:
            unnamed.add(k)
    # (group, resource, names) -> verbs
    atoms: dict[tuple[str, str, tuple[str, ...]], set[str]] = defaultdict(set)
    for k in unnamed | {k for k, v in named.items() if len(v) > max_names}:
        atoms[(k[0], k[1], ())].add(k[2])
    for k, names in named.items():
        if k not in unnamed and len(names) <= max_names:
            atoms[(k[0], k[1], tuple(sorted(names)))].add(k[2])
    for k, names in forced.items():
        if k in unnamed or (k in named and len(named[k]) > max_names):
            continue  # an unrestricted grant of the same verb already covers these
        atoms[(k[0], k[1], tuple(sorted(names | named.get(k, set()))))].add(k[2])
    for rule in extra:
        if rule.non_resource_urls:
            for u in rule.non_resource_urls:
                urls[u].update(rule.verbs)
            continue
        for g in rule.api_groups:
            for r in rule.resources:
                atoms[(g, r, rule.resource_names)].update(rule.verbs)
    return _compact(atoms) + _compact_urls(urls)


def _verbs(verbs: set[str]) -> tuple[str, ...]:
    return ("*",) if "*" in verbs else tuple(sorted(verbs))


def _compact(
    atoms: dict[tuple[str, str, tuple[str, ...]], set[str]],
) -> tuple[PolicyRule, ...]:
    by_group: dict[tuple[str, tuple[str, ...], tuple[str, ...]], set[str]] = defaultdict(set)
    for (group, resource, names), verbs in atoms.items():
        by_group[(group, names, _verbs(verbs))].add(resource)
    merged: dict[tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]], set[str]] = defaultdict(
        set
    )
    for (group, names, verb_tuple), resource_set in by_group.items():
        merged[(tuple(sorted(resource_set)), names, verb_tuple)].add(group)
    rules = [
        PolicyRule(
            verbs=verbs,
            api_groups=tuple(sorted(groups)),
            resources=resources,
            resource_names=names,
        )
        for (resources, names, verbs), groups in merged.items()
    ]
    return tuple(
        sorted(rules, key=lambda r: (r.api_groups, r.resources, r.resource_names, r.verbs))
    )


def _compact_urls(urls: dict[str, set[str]]) -> tuple[PolicyRule, ...]:
    by_verbs: dict[tuple[str, ...], set[str]] = defaultdict(set)
    for path, verbs in urls.items():
        by_verbs[_verbs(verbs)].add(path)
    return tuple(
        sorted(
            (PolicyRule(verbs=v, non_resource_urls=tuple(sorted(p))) for v, p in by_verbs.items()),
            key=lambda r: (r.non_resource_urls, r.verbs),
        )
    )

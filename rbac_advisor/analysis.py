"""The review pipeline: diff, recommend, prove. Pure: no I/O.

``run`` refuses to return a recommendation that fails its replay proof.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from rbac_advisor import diff, metrics, proof, tighten
from rbac_advisor.errors import UnsoundRecommendation
from rbac_advisor.rbac import Snapshot


@dataclass(frozen=True, slots=True)
class AnalysisOptions:
    """Options of one review."""

    attribute_all: bool = False
    max_names: int = 5
    keep_unobservable: bool = True
    window: str = ""
    measure: bool = True


@dataclass(frozen=True, slots=True)
class Result:
    """Findings, the plan that follows from them, and its proof."""

    findings: diff.Findings
    plan: tighten.Plan
    proof: proof.Proof
    after: Snapshot
    tightness: metrics.Tightness | None = None


def run(
    snapshot: Snapshot,
    observations: Iterable[diff.Observation],
    options: AnalysisOptions = AnalysisOptions(),
) -> Result:
    """Diff, recommend and prove; raise UnsoundRecommendation when the proof fails."""
    obs = tuple(observations)
    findings = diff.find(snapshot, obs, diff.DiffOptions(attribute_all=options.attribute_all))
    plan = tighten.plan(
        snapshot,
        findings,
        tighten.TightenOptions(
            max_names=options.max_names,
            keep_unobservable=options.keep_unobservable,
            window=options.window,
            namespaces=snapshot.namespaces,
        ),
    )
    after = proof.intended(snapshot, plan.apply, plan.prune)
    result = proof.prove(snapshot, after, obs, plan.apply)
    if not result.sound:
        lines = (
            [
                f"{b.identity.user}: {b.description}: "
                f"{'allowed' if b.before else 'denied'} -> {'allowed' if b.after else 'denied'}"
                for b in result.broken[:20]
            ]
            + [
                f"{e.binding} would give {e.subject} " + ", ".join(r.compact() for r in e.rules[:3])
                for e in result.escalations[:20]
            ]
            + list(result.apply_problems[:20])
        )
        raise UnsoundRecommendation(
            "refusing to write a recommendation that fails its replay proof "
            f"({len(result.broken)} changed request(s), {len(result.escalations)} new grant(s), "
            f"{len(result.apply_problems)} apply problem(s)): " + "; ".join(lines)
        )
    measured = metrics.tightness(snapshot, after, obs) if options.measure else None
    return Result(findings, plan, result, after, measured)

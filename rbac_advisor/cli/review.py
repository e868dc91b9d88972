"""The review run behind `analyze` and `demo`: read inputs, run the pipeline, write outputs."""

from __future__ import annotations

import shlex
import sys
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer

from rbac_advisor import __version__, usage_report
from rbac_advisor.cli.ingest import load_saved
from rbac_advisor.errors import ExitCode, InputError, UsageError
from rbac_advisor.rbac import Snapshot


@dataclass(frozen=True, slots=True)
class Inputs:
    """Where the audit evidence and the RBAC come from."""

    audit: list[str] = field(default_factory=list)
    usage_file: Path | None = None
    rbac: list[Path] = field(default_factory=list)
    kubeconfig: Path | None = None
    context: str | None = None
    in_cluster: bool = False
    since: str | None = None
    until: str | None = None
    skip_malformed: bool = False
    jobs: int | None = None  # processes reading large logs (None: one per CPU)


def load_snapshot(inputs: Inputs) -> tuple[Snapshot, str]:
    """RBAC from dump files or the live cluster; aggregation resolved; with a source label."""
    from rbac_advisor.aggregation import resolve
    from rbac_advisor.manifests import parse_objects

    live = inputs.kubeconfig is not None or inputs.context is not None or inputs.in_cluster
    if inputs.rbac and live:
        raise InputError(
            "give either --rbac or a cluster (--kubeconfig/--context/--in-cluster), not both"
        )
    if inputs.rbac:
        from rbac_advisor.cli.rbacfiles import load_rbac

        snap = load_rbac([str(p) for p in inputs.rbac])
        source = ", ".join(str(p) for p in inputs.rbac)
    elif live:
        from rbac_advisor import cluster

        kc = str(inputs.kubeconfig) if inputs.kubeconfig else None
        from rbac_advisor.cli.ingest import cluster_progress

        progress = cluster_progress()
        items = cluster.fetch(
            kc, inputs.context, inputs.in_cluster, progress=progress, with_namespaces=True
        )
        if progress is not None:
            typer.echo("", err=True)
        snap = parse_objects(("cluster", i) for i in items)
        source = (
            "in-cluster"
            if inputs.in_cluster
            else f"cluster {inputs.context or '(current context)'}"
        )
    else:
        raise UsageError("no RBAC given: use --rbac DUMP or --kubeconfig/--context/--in-cluster")
    resolved, drift = resolve(snap)
    return replace(resolved, warnings=resolved.warnings + tuple(drift), source=source), source


def load_usage_inputs(inputs: Inputs) -> Any:
    """The usage model from audit logs and/or a saved usage file."""
    from rbac_advisor.cli.commands.usage import load_usage

    if not inputs.audit and inputs.usage_file is None:
        raise UsageError("no audit evidence given: use --audit PATH (or --usage FILE)")
    model = None
    if inputs.audit:
        model = load_usage(
            inputs.audit,
            skip_malformed=inputs.skip_malformed,
            since=inputs.since,
            until=inputs.until,
            kubectl_only=False,
            progress=sys.stderr.isatty(),
            workers=inputs.jobs,
        )
    if inputs.usage_file is not None:
        saved = load_saved(inputs.usage_file, progress=sys.stderr.isatty())
        model = saved if model is None else model.merge(saved)
    assert model is not None  # audit logs or a usage file, checked above
    if not model.entries:
        # Without one authorized request every grant would look unused and be removed.
        if model.filtered:
            raise InputError(
                f"no request inside the observation window: all {model.filtered} requests "
                "fall outside --since/--until; widen the window or check the logs' dates"
            )
        raise InputError(
            f"no authorized request in the audit evidence ({model.requests} requests, "
            f"{model.unauthenticated} unauthenticated): nothing to base a recommendation on"
        )
    return model


def _step(message: str) -> None:
    """Progress on an interactive stderr only (logs and pipes stay clean)."""
    if sys.stderr.isatty():
        typer.echo(f"rbac-advisor: {message}...", err=True)


def review(
    inputs: Inputs,
    *,
    out: Path,
    max_names: int,
    attribute_all: bool,
    keep_unobservable: bool,
    fail_on_findings: bool,
    now: datetime | None = None,
    command: str | None = None,
) -> int:
    """Run the review and write roles.yaml, prune.yaml, findings.json, report.html."""
    from rbac_advisor.analysis import AnalysisOptions, run
    from rbac_advisor.observe import observations, window_label
    from rbac_advisor.render import findings as findings_json
    from rbac_advisor.render import manifests
    from rbac_advisor.render.report import render as render_report
    from rbac_advisor.render.review_view import build_view

    _step("reading RBAC")
    snapshot, source = load_snapshot(inputs)
    _step(f"{len(snapshot.roles)} roles, {len(snapshot.bindings)} bindings; reading audit logs")
    model = load_usage_inputs(inputs)
    window = window_label(model)
    options = AnalysisOptions(
        attribute_all=attribute_all,
        max_names=max_names,
        keep_unobservable=keep_unobservable,
        window=window,
    )
    obs = observations(model)
    _step(f"{len(obs)} distinct requests; attributing, recommending and proving")
    result = run(snapshot, obs, options)
    _step("rendering outputs")
    generated = (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    header = (
        f"Generated by rbac-advisor {__version__} from {source}; "
        f"observation window {window or 'empty'}.\n"
        "Apply with: kubectl apply -f roles.yaml && kubectl delete -f prune.yaml"
    )
    meta: dict[str, Any] = {
        "tool": {"name": "rbac-advisor", "version": __version__},
        "generatedAt": generated,
        "rbacSource": source,
        "window": {
            "start": window.partition("/")[0] or None,
            "end": window.partition("/")[2] or None,
        },
        "options": {
            "maxNames": max_names,
            "attributeAll": attribute_all,
            "keepUnobservable": keep_unobservable,
            "skipMalformed": inputs.skip_malformed,
            "since": inputs.since,
            "until": inputs.until,
        },
        "inputs": [
            {
                "path": s.path,
                "format": s.format,
                "lines": s.lines,
                "requests": s.requests,
                "skipped": s.skipped,
                "sha256": s.sha256,
                "missingFields": list(s.missing_fields),
            }
            for s in model.sources
        ],
        "requests": model.requests,
    }
    if command is None:
        command = "rbac-advisor " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    files = {
        "roles.yaml": manifests.render(result.plan.apply, header),
        "prune.yaml": manifests.render(result.plan.prune, header),
        "findings.json": findings_json.render(result, meta),
        "report.html": render_report(build_view(result, model, meta, command), generated),
    }
    from rbac_advisor.cli.outputs import write_all

    write_all(out, files)
    changed = [c for c in result.plan.changes if c.action in ("remove", "tighten")]
    typer.echo(
        f"reviewed {len(result.findings.bindings)} bindings against {model.requests} requests; "
        f"{len(changed)} to change ({len(result.plan.apply)} objects to apply, "
        f"{len(result.plan.prune)} to delete); proof: {result.proof.checked} distinct requests "
        "replayed, 0 changed",
        err=True,
    )
    t = result.tightness
    if t is not None and t.used_cells:
        typer.echo(
            f"granted cells per used cell over {t.identities} identities: "
            f"{t.before_per_used:.1f} before, {t.after_per_used:.1f} after",
            err=True,
        )
    unexplained = sum(o.count for o in result.findings.unexplained)
    if unexplained:
        typer.echo(
            f"warning: {unexplained} request(s) logged as allowed are not allowed by this RBAC "
            "(another authorizer such as Node, RBAC changed during the window, or an incomplete "
            "dump); they keep nothing alive in the recommendation",
            err=True,
        )
    for name, objs in (("roles.yaml", result.plan.apply), ("prune.yaml", result.plan.prune)):
        if not objs:
            verb = "apply" if name == "roles.yaml" else "delete"
            typer.echo(
                f"note: {name} holds no objects; skip `kubectl {verb} -f {name}` "
                "(kubectl refuses an empty file)",
                err=True,
            )
    typer.echo(f"report: {out / 'report.html'}", err=True)
    if model.skipped:
        typer.echo(f"warning: {usage_report.skipped_summary(model.sources)}", err=True)
    for text in usage_report.read_twice(model.sources):
        typer.echo(f"warning: {text}", err=True)
    return int(ExitCode.FINDINGS) if fail_on_findings and changed else int(ExitCode.OK)

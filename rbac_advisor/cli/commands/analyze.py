"""The `analyze` command: the whole review, from logs and RBAC to roles.yaml and report.html."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from rbac_advisor.cli.errors import handle_errors
from rbac_advisor.cli.helptext import reflow
from rbac_advisor.cli.options import Jobs

HELP = """Find unused grants and write the minimal RBAC that still allows every observed request.

Reads audit logs (or a saved usage model) and the cluster's RBAC (a live cluster or a
`kubectl get -o yaml` dump), attributes every request to the binding that allowed it,
proposes the smallest Roles/ClusterRoles and bindings, replays every observed request
against current + roles.yaml - prune.yaml, and writes nothing unless that proof passes.

Writes into --out: roles.yaml (kubectl apply -f), prune.yaml (kubectl delete -f),
findings.json and report.html.

Examples:

  rbac-advisor analyze --audit /var/log/kube-audit/ --rbac rbac-dump.yaml

  rbac-advisor analyze --audit audit.log.gz --kubeconfig ~/.kube/config --context prod --out review/
"""

OUTPUTS = ("roles.yaml", "prune.yaml", "findings.json", "report.html")
"""The files the review writes into --out."""


def analyze(
    audit: Annotated[
        list[str] | None,
        typer.Option(
            "--audit", "-a", help="Audit log file, .gz, directory or - (stdin). Repeatable."
        ),
    ] = None,
    usage_file: Annotated[
        Path | None,
        typer.Option(
            "--usage",
            help="A usage model saved by `rbac-advisor usage --save` (instead of or with --audit).",
        ),
    ] = None,
    rbac: Annotated[
        list[Path] | None,
        typer.Option(
            "--rbac",
            "-r",
            help="RBAC dump: YAML/JSON file or directory (kubectl get -o yaml). Repeatable.",
        ),
    ] = None,
    kubeconfig: Annotated[
        Path | None,
        typer.Option("--kubeconfig", help="Read RBAC from the cluster of this kubeconfig."),
    ] = None,
    context: Annotated[
        str | None, typer.Option("--context", help="kubeconfig context to use.")
    ] = None,
    in_cluster: Annotated[
        bool, typer.Option("--in-cluster", help="Read RBAC with the pod's service account.")
    ] = False,
    out: Annotated[Path, typer.Option("--out", "-o", help="Output directory.")] = Path("reports"),
    since: Annotated[
        str | None,
        typer.Option(
            "--since",
            help=(
                "Ignore requests before this time: RFC 3339, or a duration back from now "
                "(30d, 12h). Audit logs only, not --usage."
            ),
        ),
    ] = None,
    until: Annotated[
        str | None,
        typer.Option("--until", help="Ignore requests at or after this time (same forms)."),
    ] = None,
    skip_malformed: Annotated[
        bool,
        typer.Option(
            "--skip-malformed",
            help="Skip unreadable log lines (counted in the report) instead of stopping.",
        ),
    ] = False,
    max_names: Annotated[
        int,
        typer.Option(
            "--max-names",
            min=0,
            help="Use resourceNames when a permission was used on at most this many named objects.",
        ),
    ] = 5,
    attribute_all: Annotated[
        bool,
        typer.Option(
            "--attribute-all",
            help=(
                "Credit a request to every binding that allows it (keeps more) instead of "
                "the tightest one."
            ),
        ),
    ] = False,
    drop_unobservable: Annotated[
        bool,
        typer.Option(
            "--drop-unobservable",
            help=(
                "Also remove what an audit log cannot show being used (verbs bind, escalate, "
                "approve, ...; kubelet and /metrics permissions checked by delegated "
                "authorization). Default: keep and flag them."
            ),
        ),
    ] = False,
    fail_on_findings: Annotated[
        bool,
        typer.Option("--fail-on-findings", help="Exit 5 when the recommendation changes anything."),
    ] = False,
    jobs: Jobs = None,
) -> None:
    """Find unused grants and write the minimal RBAC (see --help)."""
    import time

    from rbac_advisor.cli.ingest import parse_window
    from rbac_advisor.cli.outputs import check_target, input_files
    from rbac_advisor.cli.review import Inputs, review

    filters = [f for f, v in (("--since", since), ("--until", until)) if v]
    if usage_file is not None and filters:
        raise typer.BadParameter(
            f"{'/'.join(filters)} cannot be combined with --usage: the filters apply to audit "
            "logs only, and a saved model keeps the filters it was built with"
        )
    parse_window(since, until, time.time())
    # Before the long run: no output may replace an input or something that is not a file.
    inputs = input_files(
        audit=audit or [],
        manifests=[str(p) for p in rbac or []],
        files=[str(usage_file)] if usage_file is not None else [],
    )
    if out.exists():  # otherwise it is created, and each file in it is new
        for name in OUTPUTS:
            check_target(out / name, inputs)

    code = review(
        Inputs(
            audit=audit or [],
            usage_file=usage_file,
            rbac=rbac or [],
            kubeconfig=kubeconfig,
            context=context,
            in_cluster=in_cluster,
            since=since,
            until=until,
            skip_malformed=skip_malformed,
            jobs=jobs,
        ),
        out=out,
        max_names=max_names,
        attribute_all=attribute_all,
        keep_unobservable=not drop_unobservable,
        fail_on_findings=fail_on_findings,
    )
    raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    """Attach the command to the app."""
    app.command(name="analyze", help=reflow(HELP))(handle_errors(analyze))

"""The `verify` command: replay observed requests against current RBAC + apply - prune."""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from rbac_advisor.cli.errors import handle_errors, warning
from rbac_advisor.cli.options import Jobs
from rbac_advisor.errors import ExitCode

if TYPE_CHECKING:
    from rbac_advisor.rbac import Snapshot
    from rbac_advisor.replay import CitedEntry

HELP = "\n\n".join(
    [
        "Replay the requests seen in audit logs against the RBAC you intend to have.",
        "The intended RBAC is the current one (--rbac) plus --apply (created or replaced by "
        "name) minus --prune (deleted by name), as `kubectl apply -f` then `kubectl delete -f` "
        "would leave it. Every distinct request whose outcome would change is listed: allowed "
        "before and denied after (something breaks) or denied before and allowed after (new "
        "access). The logged decision is what counts as before; requests logged without one "
        "are compared with the current RBAC. Roles and RoleBindings without a namespace are "
        "placed in `default`, as kubectl does without -n.",
        "Members of system:masters are always allowed; node requests that RBAC would deny are "
        "left to the Node authorizer. A logged allow whose reason names a group of a current "
        "binding that the log does not list (GKE logs carry no groups) is replayed with that "
        "group.",
        "Exit codes: 0 when nothing changes, 5 when something does, 3 when an input cannot be "
        "read.",
        "Example:",
        "  rbac-advisor verify --audit audit/ --rbac prod-rbac.yaml "
        "--apply review/roles.yaml --prune review/prune.yaml",
    ]
)


def _load_entries(
    paths: Sequence[Path], skip_malformed: bool, jobs: int | None = None
) -> tuple[list[CitedEntry], list[str]]:
    """(identity, access, decision, count, reason) per usage entry, plus notes for stderr.

    The parsed allow reason lets the replay add the group it names when the log carries
    no group memberships (GKE).
    """
    # The usage loader belongs to the `usage` command (its module re-exports the shared
    # one in cli.ingest); imported late to keep startup light.
    command = importlib.import_module("rbac_advisor.cli.commands.usage")
    load_usage = getattr(command, "load_usage", None)
    if load_usage is None:
        load_usage = importlib.import_module("rbac_advisor.cli.ingest").load_usage
    usage = load_usage(
        [str(p) for p in paths], skip_malformed=skip_malformed, since=None, until=None,
        kubectl_only=False, progress=sys.stderr.isatty(), workers=jobs,
    )  # fmt: skip
    entries: list[CitedEntry] = [
        (k.identity, k.access, k.decision, s.count, k.via) for k, s in usage.entries.items()
    ]
    skipped = int(getattr(usage, "skipped", 0))
    notes = [f"{skipped} malformed audit record(s) skipped"] if skipped else []
    return entries, notes


def _load_rbac(paths: Iterable[Path] | None) -> Snapshot:
    from rbac_advisor.cli.rbacfiles import load_snapshot
    from rbac_advisor.rbac import Snapshot

    # Apply and prune sets are taken as written: no aggregation fill-in.
    return load_snapshot(list(paths), aggregate=False) if paths else Snapshot()


@handle_errors
def verify(
    audit: Annotated[
        list[Path], typer.Option("--audit", help="Audit log file or directory (repeatable).")
    ],
    rbac: Annotated[
        list[Path], typer.Option("--rbac", help="Current RBAC: manifest file or directory.")
    ],
    apply: Annotated[
        list[Path] | None, typer.Option("--apply", help="Objects to create or replace.")
    ] = None,
    prune: Annotated[list[Path] | None, typer.Option("--prune", help="Objects to delete.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object on stdout.")] = False,
    skip_malformed: Annotated[
        bool, typer.Option("--skip-malformed", help="Skip unreadable audit lines (counted).")
    ] = False,
    jobs: Jobs = None,
) -> None:
    """Replay observed requests against the intended RBAC."""
    from rbac_advisor.authorizer import Authorizer
    from rbac_advisor.cli.rbacfiles import load_snapshot
    from rbac_advisor.replay import intended, replay_report, result_to_json, result_to_text

    current = load_snapshot(rbac)
    target = intended(current, _load_rbac(apply), _load_rbac(prune))
    entries, notes = _load_entries(audit, skip_malformed, jobs)
    result = replay_report(entries, Authorizer(current), Authorizer(target))
    for note in [*current.warnings, *notes, *result.warnings]:
        warning(note)
    if as_json:
        typer.echo(json.dumps(result_to_json(result), indent=2))
    else:
        typer.echo(result_to_text(result), nl=False)
    raise typer.Exit(int(ExitCode.FINDINGS) if result.changes else 0)


def register(app: typer.Typer) -> None:
    """Attach the command to the app."""
    app.command(name="verify", help=HELP)(verify)

"""The `can-i` command: offline ``kubectl auth can-i`` against an RBAC dump, with the reason."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from rbac_advisor.cli.errors import handle_errors, warning

if TYPE_CHECKING:
    from rbac_advisor.cani import Answer

HELP = "\n\n".join(
    [
        "Check whether a user may make one request, against RBAC manifests or a dump.",
        "Prints `yes` or `no` on stdout, and on stderr the reason the apiserver would log (the "
        "binding, role and subject that allow it). Like `kubectl auth can-i`, it exits 0 for "
        "yes and 1 for no (3 when an input cannot be read).",
        "RESOURCE is `pods`, `pods/log`, `deployments.apps`, a short name (`deploy`), `*`, or "
        "a non-resource URL such as `/healthz`. A resource this tool does not know is looked "
        "up in the core group unless written as RESOURCE.GROUP. Cluster-scoped resources are "
        "checked at cluster scope, as their real requests are.",
        "The identity gets the groups the apiserver gives an impersonated user: "
        "`system:authenticated` (except for `system:anonymous`) and, for a service account "
        "`system:serviceaccount:NS:NAME` without --as-group, `system:serviceaccounts` and "
        "`system:serviceaccounts:NS`. Members of `system:masters` are always allowed.",
        "Examples:",
        "  rbac-advisor can-i list secrets -n team-a --as alice --as-group dev --rbac prod.yaml",
        "  rbac-advisor can-i create pods/exec -n web --as system:serviceaccount:ci:deployer "
        "--rbac review/",
    ]
)


@handle_errors
def can_i(
    verb: Annotated[str, typer.Argument(help="The verb: get, list, create, ...")],
    resource: Annotated[
        str, typer.Argument(metavar="RESOURCE[/SUB]", help="Resource, resource/sub or /url.")
    ],
    as_user: Annotated[str, typer.Option("--as", help="The user to check, e.g. alice.")],
    rbac: Annotated[
        list[Path], typer.Option("--rbac", help="RBAC manifest file or directory (repeatable).")
    ],
    name: Annotated[str, typer.Argument(help="Object name, for resourceNames rules.")] = "",
    namespace: Annotated[str, typer.Option("-n", "--namespace", help="Namespace.")] = "default",
    all_namespaces: Annotated[
        bool, typer.Option("-A", "--all-namespaces", help="Ask at cluster scope.")
    ] = False,
    as_group: Annotated[
        list[str] | None, typer.Option("--as-group", help="A group of the user (repeatable).")
    ] = None,
    show_all: Annotated[
        bool, typer.Option("--all", help="List every grant that allows it, not just the first.")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", help="Print nothing; exit code only.")] = False,
) -> None:
    """Answer one can-i question offline."""
    from rbac_advisor.authorizer import Authorizer
    from rbac_advisor.cani import Question, ask
    from rbac_advisor.cli.rbacfiles import load_snapshot

    snapshot = load_snapshot(rbac)
    question = Question(
        verb, resource, name, namespace, all_namespaces, as_user, tuple(as_group or ())
    )
    answer = ask(Authorizer(snapshot), question)
    if not quiet:
        for note in [*snapshot.warnings, *answer.notes]:
            warning(note)
        typer.echo("yes" if answer.allowed else "no")
        _explain(answer, show_all)
    raise typer.Exit(0 if answer.allowed else 1)


def _explain(answer: Answer, show_all: bool) -> None:
    if answer.privileged:
        typer.echo("allowed by the system:masters group before RBAC (empty reason)", err=True)
    elif not answer.allowed:
        groups = ", ".join(answer.identity.groups)
        typer.echo(
            f'no RBAC rule allows User "{answer.identity.user}" (groups: {groups}) to '
            f"{answer.access.display()}",
            err=True,
        )
    elif show_all:
        for grant in answer.grants:
            typer.echo(f"{grant.reason()}: rule {grant.rule_index} {grant.rule.compact()}")
    else:
        typer.echo(answer.reason(), err=True)


def register(app: typer.Typer) -> None:
    """Attach the command to the app."""
    app.command(name="can-i", help=HELP)(can_i)

"""The typer application: global options and command registration."""

from __future__ import annotations

import logging
import sys
from typing import Annotated

import typer

from rbac_advisor import __version__
from rbac_advisor.cli import commands

app = typer.Typer(
    name="rbac-advisor",
    help=(
        "Kubernetes RBAC least privilege from audit logs.\n\n"
        "Reads API-server audit logs and the cluster's RBAC, finds what is granted but never "
        "used, and writes minimal Roles/ClusterRoles and bindings (roles.yaml, prune.yaml) "
        "plus an HTML report, after proving them against every observed request.\n\n"
        "Start with:  rbac-advisor demo"
    ),
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"rbac-advisor {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
    verbose: Annotated[int, typer.Option("-v", "--verbose", count=True, help="More logs.")] = 0,
    quiet: Annotated[bool, typer.Option("-q", "--quiet", help="Only errors on stderr.")] = False,
) -> None:
    if quiet:
        level = logging.ERROR
    else:
        level = {0: logging.WARNING, 1: logging.INFO}.get(verbose, logging.DEBUG)
    logging.basicConfig(level=level, format="%(levelname)s: %(name)s: %(message)s")


commands.register(app)


def main() -> None:
    """Console-script entry point: usage errors become one ``error:`` line and exit 2."""
    try:
        code = app(standalone_mode=False)
    except Exception as err:  # click's exception classes are vendored privately by typer
        fmt = getattr(err, "format_message", None)
        exit_code = getattr(err, "exit_code", None)
        ctx = getattr(err, "ctx", None)
        if type(err).__name__ == "NoArgsIsHelpError" and ctx is not None:
            typer.echo(ctx.get_help())
            sys.exit(0)
        if type(err).__name__ == "Abort":
            typer.echo("error: aborted", err=True)
            sys.exit(1)
        if fmt is None or not isinstance(exit_code, int):
            raise
        hint = f" (see '{ctx.command_path} --help')" if ctx is not None and exit_code == 2 else ""
        typer.echo(f"error: {fmt()}{hint}", err=True)
        sys.exit(exit_code)
    sys.exit(code if isinstance(code, int) else 0)

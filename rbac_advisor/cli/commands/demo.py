"""The `demo` command: analyze the bundled example cluster into reports/."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from rbac_advisor.cli.errors import handle_errors
from rbac_advisor.cli.helptext import reflow
from rbac_advisor.errors import InputError

HELP = """Run `analyze` on the bundled example cluster and print where the report is.

The example (fixtures/demo) was recorded from a real kube-apiserver: an RBAC dump
(rbac.yaml) and the audit log of real kubectl and client traffic (audit.jsonl).

Example:

  rbac-advisor demo && xdg-open reports/report.html
"""


def demo_dir() -> Path:
    """The demo data: the source tree's fixtures/demo, or the copy inside the wheel."""
    here = Path(__file__).resolve()
    for candidate in (here.parents[3] / "fixtures" / "demo", here.parents[2] / "_demo"):
        if (candidate / "rbac.yaml").is_file():
            return candidate
    raise InputError("the demo data (fixtures/demo) is not installed with this copy")


def demo(
    out: Annotated[Path, typer.Option("--out", "-o", help="Output directory.")] = Path("reports"),
) -> None:
    """Analyze the bundled example cluster (see --help)."""
    from rbac_advisor.cli.review import Inputs, review

    data = demo_dir()
    review(
        Inputs(audit=[str(data / "audit.jsonl")], rbac=[data / "rbac.yaml"]),
        out=out,
        max_names=5,
        attribute_all=False,
        keep_unobservable=True,
        fail_on_findings=False,
    )
    for name in ("roles.yaml", "prune.yaml", "findings.json", "report.html"):
        typer.echo(str(out / name))


def register(app: typer.Typer) -> None:
    """Attach the command to the app."""
    app.command(name="demo", help=reflow(HELP))(handle_errors(demo))

"""The `snapshot` command: live RBAC -> one YAML ``kind: List`` for offline review."""

from __future__ import annotations

import sys
import time
from collections import Counter
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from rbac_advisor.cli.errors import handle_errors
from rbac_advisor.cli.helptext import reflow
from rbac_advisor.cli.outputs import check_target, write_file

HELP = """Save the cluster's Roles, ClusterRoles and bindings as one YAML List.

The file is what `--rbac FILE` reads back: objects sorted by kind, namespace and name,
without managedFields, uid, resourceVersion or creationTimestamp. The identity needs
get/list on the four RBAC kinds (deploy/reader-clusterrole.yaml). When it may also list
namespaces, the file ends with one Namespace per namespace (name only), so an offline
review knows which namespaces exist; otherwise a warning says they are left out.

Examples:

  rbac-advisor snapshot --context prod -o prod-rbac.yaml

  rbac-advisor snapshot --in-cluster -o - > rbac.yaml
"""


def snapshot(
    output: Annotated[str, typer.Option("-o", "--output", help="File to write ('-' for stdout).")],
    kubeconfig: Annotated[
        Path | None, typer.Option("--kubeconfig", help="Kubeconfig file (default $KUBECONFIG).")
    ] = None,
    context: Annotated[str | None, typer.Option("--context", help="Kubeconfig context.")] = None,
    in_cluster: Annotated[
        bool, typer.Option("--in-cluster", help="Use the pod's service account.")
    ] = False,
    page_size: Annotated[
        int, typer.Option("--page-size", min=1, help="Objects per list request.")
    ] = 500,
    timeout: Annotated[
        float, typer.Option("--timeout", min=1, help="Seconds to wait for each request.")
    ] = 30,
) -> None:
    """Save the cluster's RBAC objects (and namespace names) as one YAML List."""
    if in_cluster and (kubeconfig or context):
        raise typer.BadParameter("--in-cluster cannot be combined with --kubeconfig/--context")
    if output != "-":
        check_target(Path(output))  # a bad path fails before the cluster is read
    from rbac_advisor import cluster  # lazy: loads the kubernetes client
    from rbac_advisor.cli.ingest import cluster_progress

    started = time.monotonic()
    progress = cluster_progress()
    items = cluster.fetch(
        str(kubeconfig) if kubeconfig else None, context, in_cluster,
        page_size=page_size, timeout=timeout, progress=progress, with_namespaces=True,
    )  # fmt: skip
    if progress is not None:
        typer.echo("", err=True)
    text = dump_list(cluster.to_list_document(items))
    _write(output, text)
    counts = Counter(str(o.get("kind")) for o in items)
    kinds = (*cluster.KINDS, cluster.NAMESPACES)
    summary = ", ".join(f"{counts[k.kind]} {k.kind}s" for k in kinds)
    where = "stdout" if output == "-" else output
    typer.echo(
        f"snapshot: {len(items)} objects ({summary}) in {time.monotonic() - started:.1f}s "
        f"-> {where}",
        err=True,
    )


def dump_list(doc: dict[str, Any]) -> str:
    """YAML text of a List, keys in manifest order, with libyaml when available."""
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    return yaml.dump(doc, Dumper=dumper, sort_keys=False, default_flow_style=False, width=1000)


def _write(output: str, text: str) -> None:
    """Write atomically: a failed run never leaves a truncated snapshot behind."""
    if output == "-":
        sys.stdout.write(text)
        return
    write_file(Path(output), text)


def register(app: typer.Typer) -> None:
    """Attach the command to the app."""
    app.command(name="snapshot", help=reflow(HELP))(handle_errors(snapshot))

"""The `usage` command: who did what, from audit logs (and saved models)."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from rbac_advisor import logfiles
from rbac_advisor.cli.errors import handle_errors, warning
from rbac_advisor.cli.helptext import reflow
from rbac_advisor.cli.ingest import load_saved, load_usage, parse_window
from rbac_advisor.cli.options import Jobs
from rbac_advisor.cli.outputs import check_target, input_files, write_pieces
from rbac_advisor.cli.progress import Progress
from rbac_advisor.errors import InputError, ResourceError, UsageError

__all__ = ["load_usage", "register", "usage"]


HELP = """Summarise who did what per user and service account, from audit logs.

Counts every API request once, whatever stages were logged, with the subject (the
impersonated user when there is one), the authorizer's attributes, the decision and the
binding that allowed it, the tool and its version (from the user agent), and when.
The stages of a request are matched in a bounded window that assumes a log is written in
about the order requests arrive (docs/usage-json.md): only stages logged further apart
than that window (hundreds of thousands of requests) may count as two requests.
Reads apiserver logs (JSON lines, EventList batches, pretty-printed documents), GKE, EKS
and AKS exports, .gz files, directories (rotated sets in order) and stdin. Log files that
add up to 16 MB of text or more are read by one process per CPU (--jobs to choose), each
over its share; on a terminal a progress bar shows on stderr. A malformed line stops the run
(exit 3) unless --skip-malformed, which counts what it skipped.

--since and --until take RFC 3339 times or durations counted back from now (30d, 12h);
--until is exclusive. They and --kubectl-only filter the audit logs as they are read: a
model given with --load keeps the filters it was built with, so they cannot be combined
with --load.

Prints a table, or with --json one object (docs/usage-json.md). --save keeps the model
for `analyze --usage` or a later --load merge; it never replaces an input log.

The table has a row per subject, most active first: the REQUESTS made as it, by logged
decision (UNKNOWN: logged only at RequestReceived, or refused before authorization), the
distinct permissions it used (PERMS), its TOOLS and when it was LAST SEEN. A request made
with impersonation is the impersonated user's; the impersonator has a row of its own,
whose impersonate checks are permissions it used but not requests, so it may show 0
requests beside them (a refused impersonation counts as denied for it).

Exit codes: 0 done; 2 bad flags or no input; 3 bad input (a malformed record, a truncated
gzip, no audit event, a damaged saved model or one whose parts disagree, models that add up
past what --save can hold, an output path that is an input); 6 out of memory, a reading process
was killed (--jobs 1 reads in one process), or standard output or the temporary file for
counts (in TMPDIR) could not be written.

Examples:

  rbac-advisor usage /var/log/kubernetes/audit/

  rbac-advisor usage audit.log.gz --kubectl-only --since 30d

  rbac-advisor usage node1/ --save node1.usage.json

  rbac-advisor usage --load node1.usage.json --load node2.usage.json --json
"""


def usage(
    paths: Annotated[
        list[str] | None,
        typer.Argument(
            help="Audit logs: files, .gz, directories, or - for stdin.", metavar="PATH..."
        ),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="One JSON object on stdout.")] = False,
    kubectl_only: Annotated[
        bool, typer.Option("--kubectl-only", help="Only requests made with kubectl.")
    ] = False,
    since: Annotated[
        str | None,
        typer.Option(help="Start of the window: RFC 3339, or a duration back from now (30d, 12h)."),
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="End of the window (exclusive), in the same forms.")
    ] = None,
    save: Annotated[
        Path | None, typer.Option(help="Also save the usage model (JSON) for later merging.")
    ] = None,
    load: Annotated[
        list[Path] | None,
        typer.Option(
            help="Merge a model saved with --save (repeatable); it keeps its own filters."
        ),
    ] = None,
    skip_malformed: Annotated[
        bool,
        typer.Option("--skip-malformed", help="Count and skip bad records instead of failing."),
    ] = False,
    jobs: Jobs = None,
) -> None:
    """Summarise who did what per user and service account, from audit logs."""
    from rbac_advisor import usage as model

    if not paths and not load:
        raise UsageError("give audit log paths (or - for stdin), or --load a saved model")
    filters = [
        f
        for f, v in (("--since", since), ("--until", until), ("--kubectl-only", kubectl_only))
        if v
    ]
    if load and filters:
        raise typer.BadParameter(
            f"{'/'.join(filters)} cannot be combined with --load: the filters apply to audit "
            "logs only, and a saved model keeps the filters it was built with"
        )
    if save is not None and str(save) == "-":
        raise typer.BadParameter("--save needs a file: the model is not written to stdout")
    t0, t1 = parse_window(since, until, time.time())
    # Names the steps after reading (merging, saving) once the command has taken a second.
    steps = Progress(True, 1)
    inputs = input_files(audit=paths or [])
    if save is not None:
        check_target(save, inputs)  # before the logs are read
    result: model.Usage | None = None
    if paths:
        result = load_usage(
            list(paths),
            skip_malformed=skip_malformed,
            since=t0,
            until=t1,
            kubectl_only=kubectl_only,
            progress=True,
            workers=jobs,
        )
    for p in logfiles.distinct(load or []):
        saved = load_saved(p, progress=True)
        if result is not None:
            steps.phase("merging the usage models")
        result = saved if result is None else result.merge(saved)
    assert result is not None  # paths or --load, checked above
    from rbac_advisor import usage_codec, usage_report

    if save is not None and (big := usage_codec.too_large(result)) is not None:
        raise InputError(f"cannot save {save}: {big}")
    if save is not None:  # written as it is encoded: the model's text is never held whole
        steps.phase(f"saving the usage model to {save.name}")
        write_pieces(save, usage_codec.dump_chunks(result), inputs)
    steps.done()
    if result.skipped:
        warning(usage_report.skipped_summary(result.sources))
    for text in usage_report.read_twice(result.sources):
        warning(text)
    if not result.requests and result.filtered:
        warning(
            f"all {result.filtered} requests fall outside --since/--until"
            + (" or were not made with kubectl" if kubectl_only else "")
        )
    # Summarising many subjects takes seconds: a bar on a terminal's stderr says so, unless
    # the JSON streams to that terminal (the table is written once every row is known).
    meter = Progress(not (json_out and sys.stdout.isatty()), 1)
    meter.file(1, "writing JSON" if json_out else "summarising the subjects")
    pieces = usage_report.iter_json if json_out else usage_report.iter_table
    try:
        for piece in pieces(result, lambda share: meter.tick(0, share)):  # bounded memory
            if not json_out:
                meter.done()
            sys.stdout.write(piece)
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly, as other commands do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise typer.Exit(141) from None
    except OSError as err:
        raise ResourceError(f"cannot write to standard output: {err.strerror or err}") from None
    finally:
        meter.done()


def register(app: typer.Typer) -> None:
    """Attach the command to the app."""
    app.command(name="usage", help=reflow(HELP))(handle_errors(usage))

"""The error tree and exit codes: core modules raise these, only the CLI prints them."""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    """Process exit codes; each has exactly one meaning."""

    OK = 0
    BUG = 1
    USAGE = 2
    BAD_INPUT = 3
    CLUSTER = 4
    FINDINGS = 5
    RESOURCES = 6


class AdvisorError(Exception):
    """Base of every error the tool reports to the user as one line."""

    exit_code: ExitCode = ExitCode.BUG

    def __init__(self, message: str) -> None:
        """Keep the one-line message."""
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        """Return the one-line message."""
        return self.message


class UsageError(AdvisorError):
    """The command line is incomplete or a flag's value cannot be read."""

    exit_code = ExitCode.USAGE


class InputError(AdvisorError):
    """A file, flag value or document the user gave us is unusable."""

    exit_code = ExitCode.BAD_INPUT


def located(path: str, line: int, reason: str) -> str:
    """``path:line: reason`` as messages name a record (stdin as ``<stdin>``; line 0: none)."""
    shown = "<stdin>" if path == "-" else path
    return f"{shown}:{line}: {reason}" if line else f"{shown}: {reason}"


class AuditParseError(InputError):
    """An audit log line could not be read as an audit event."""

    def __init__(self, path: str, line: int, reason: str, *, skippable: bool = True) -> None:
        """Name the file ("-": stdin), line (0: the input as a whole) and problem.

        ``skippable`` False: ``--skip-malformed`` does not get past it (text that is not
        UTF-8, or invalid JSON in a file of JSON documents, ends what can be read).
        """
        super().__init__(located(path, line, reason))
        self.path = path
        self.line = line
        self.reason = reason
        self.skippable = skippable


class ManifestError(InputError):
    """An RBAC manifest could not be read."""

    def __init__(self, path: str, obj: str, reason: str) -> None:
        """Name the file, object and problem."""
        where = f"{path}: {obj}" if obj else path
        super().__init__(f"{where}: {reason}")
        self.path = path
        self.obj = obj
        self.reason = reason


class UnsoundRecommendation(AdvisorError):
    """The recommendation failed its own replay proof; nothing was written."""

    exit_code = ExitCode.FINDINGS


class ClusterError(AdvisorError):
    """The cluster could not be read completely."""

    exit_code = ExitCode.CLUSTER


class ClusterUnreachable(ClusterError):
    """No connection, TLS failure, timeout or bad kubeconfig."""


class ClusterForbidden(ClusterError):
    """The tool's identity lacks a permission it needs."""

    def __init__(self, verb: str, resource: str, detail: str = "") -> None:
        """Name the missing verb and resource."""
        msg = (
            f"the cluster refused to {verb} {resource}: this identity needs "
            f"'{verb}' on {resource}; bind it to the rbac-advisor-reader ClusterRole "
            "(deploy/reader-clusterrole.yaml) or use --rbac with a dump"
        )
        if detail:
            msg += f" ({detail})"
        super().__init__(msg)
        self.verb = verb
        self.resource = resource


class ResourceError(AdvisorError):
    """The machine ran out of something the run needs: memory, or a process was killed."""

    exit_code = ExitCode.RESOURCES


class OutOfMemory(ResourceError):
    """Memory ran out (``MemoryError``)."""

    def __init__(self) -> None:
        """Say what to try."""
        super().__init__(
            "out of memory: read fewer or smaller inputs at once (--since/--until narrow "
            "the window), or run on a machine with more memory"
        )


class WorkerLost(ResourceError):
    """A process reading a share of the logs ended without a result."""

    def __init__(self, exitcode: int | None) -> None:
        """Name the signal or exit status it ended with."""
        if exitcode is not None and exitcode < 0:
            how = f"was killed by signal {-exitcode}"
            if -exitcode == 9:
                how += " (the system may have run out of memory)"
        else:
            how = f"exited with status {exitcode}"
        super().__init__(
            f"a process reading the audit logs {how} before it finished; "
            "--jobs 1 reads them in one process"
        )
        self.exitcode = exitcode

"""Maps AdvisorError to one stderr line and its exit code, in one place."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import typer

from rbac_advisor.errors import AdvisorError, OutOfMemory
from rbac_advisor.usage_report import printable

P = ParamSpec("P")
R = TypeVar("R")


def error(message: str) -> None:
    """Print one ``error:`` line on stderr (file names and log text escaped: see printable)."""
    typer.echo(f"error: {printable(message)}", err=True)


def warning(message: str) -> None:
    """Print one ``warning:`` line on stderr (not with ``--quiet``)."""
    if not quiet():
        typer.echo(f"warning: {printable(message)}", err=True)


def quiet() -> bool:
    """True with ``--quiet``: only errors go to stderr."""
    return not logging.getLogger().isEnabledFor(logging.WARNING)


def handle_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Turn AdvisorError (and running out of memory) into one line and an exit code."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except AdvisorError as err:
            error(str(err))
            raise typer.Exit(int(err.exit_code)) from None
        except MemoryError:
            oom = OutOfMemory()
            error(str(oom))
            raise typer.Exit(int(oom.exit_code)) from None
        except KeyboardInterrupt:
            error("interrupted")
            raise typer.Exit(130) from None

    return wrapper

"""The command line: the only place that parses argv, prints, or exits."""

from __future__ import annotations

from rbac_advisor.cli.app import app, main

__all__ = ["app", "main"]

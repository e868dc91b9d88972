"""One module per command; ``register`` adds them all to the app."""

from __future__ import annotations

import importlib

import typer

# Order is the order `--help` lists them in.
COMMANDS = ("analyze", "usage", "snapshot", "verify", "can_i", "demo")


def register(app: typer.Typer) -> None:
    """Import each command module and let it attach itself to ``app``."""
    for name in COMMANDS:
        module = importlib.import_module(f"rbac_advisor.cli.commands.{name}")
        module.register(app)

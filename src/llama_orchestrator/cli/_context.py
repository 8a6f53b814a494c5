"""What every command gets from the root callback: the resolved home and the debug flag."""

from __future__ import annotations

from dataclasses import dataclass

import typer

from llama_orchestrator.config.paths import HomePaths, resolve_home


@dataclass
class CliContext:
    paths: HomePaths
    debug: bool = False


def context(ctx: typer.Context) -> CliContext:
    """The CliContext stored by the root callback (or a default one, for sub-apps run alone)."""
    root = ctx.find_root().obj
    if isinstance(root, CliContext):
        return root
    return CliContext(resolve_home(None))

"""What every command gets from the root callback: the resolved home and the debug flag."""

from __future__ import annotations

import os
from dataclasses import dataclass

import typer

from llama_orchestrator.config.paths import ENV_HOME, HomePaths, default_home, resolve_home
from llama_orchestrator.errors import HomeError

# The commands that only look at a home: on one that does not exist they say so rather than show
# an empty fleet (a typo in --home would otherwise look like a home with nothing in it).
LOOKING = frozenset({"ps", "ls", "inspect", "logs", "events"})


@dataclass
class CliContext:
    paths: HomePaths
    debug: bool = False


def context(ctx: typer.Context) -> CliContext:
    """The CliContext stored by the root callback (or a default one, for sub-apps run alone)."""
    root = ctx.find_root()
    found = root.obj if isinstance(root.obj, CliContext) else CliContext(resolve_home(None))
    from_flag = bool(root.params.get("home"))
    named = from_flag or bool(os.environ.get(ENV_HOME))  # the default home not made yet is just empty
    if named and ctx.parent is root and ctx.info_name in LOOKING and not found.paths.home.exists():
        raise missing_home(found.paths, from_flag=from_flag)
    return found


def missing_home(paths: HomePaths, *, from_flag: bool) -> HomeError:
    """The error of a listing command given a home that does not exist (it creates none)."""
    chosen = "--home" if from_flag else f"${ENV_HOME}"
    return HomeError(
        f"home {paths.home} does not exist (chosen by {chosen})",
        hint=f"the home is --home, else ${ENV_HOME}, else {default_home()}; check the path for a typo, "
        "or `llama-orch create` makes a new home with its first instance",
    )

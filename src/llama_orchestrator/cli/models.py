"""`llama-orch models ls|rm`: the models `pull` fetched, and which instances use them (no daemon needed)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from llama_orchestrator.cli import _console
from llama_orchestrator.cli._context import context
from llama_orchestrator.errors import HubError, HubNotFoundError, ModelInUseError

if TYPE_CHECKING:
    from llama_orchestrator.config.paths import HomePaths
    from llama_orchestrator.hub.local import LocalModel

models_app = typer.Typer(help="The models `llama-orch pull` fetched.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(models_app, name="models")


@models_app.command("ls")
def list_models(ctx: typer.Context, as_json: bool = typer.Option(False, "--json", help="Print as JSON.")) -> None:
    """List the fetched models: repo, file, size, and the instances whose config uses each."""
    from rich.table import Table

    from llama_orchestrator import units
    from llama_orchestrator.hub.local import local_models

    paths = context(ctx).paths
    models = local_models(paths.models_dir)
    users = _users(paths, models)
    found = [(m, users.get(m.path.resolve(), [])) for m in models]
    if as_json:
        _console.print_json([{"repo": m.repo, "file": m.file, "bytes": m.bytes, "path": str(m.path), "used_by": used}
                             for m, used in found])
        return
    table = Table("REPO", "FILE", "SIZE", "USED BY", box=None, pad_edge=False)
    for m, used in found:
        table.add_row(m.repo, m.file, units.size(m.bytes), ", ".join(used) or "-")
    _console.out.print(table)


@models_app.command("rm")
def remove_model(
    ctx: typer.Context,
    model: str = typer.Argument(..., help="owner/repo[:QUANT], as given to pull."),
) -> None:
    """Delete a fetched model's file(s); refused while an instance config uses one (rm that first).

    Example: llama-orch models rm ggml-org/gemma-3-1b-it-GGUF:Q8_0
    """
    from llama_orchestrator.cli.pull import spec_of
    from llama_orchestrator.hub.choice import NoSuchModelFile
    from llama_orchestrator.hub.local import forget, local_models, named

    paths = context(ctx).paths
    spec = spec_of(model)
    models = local_models(paths.models_dir)
    try:
        chosen = named(models, spec)
    except NoSuchModelFile as exc:
        raise HubNotFoundError(f"not fetched: {exc}") from None
    if not chosen:
        raise HubNotFoundError(f"no model of {spec.repo} has been fetched into {paths.models_dir}",
                               hint="llama-orch models ls")
    users = _users(paths, models)
    if using := sorted({name for m in chosen for name in users.get(m.path.resolve(), [])}):
        raise ModelInUseError(f"{spec} is the model of {', '.join(using)}",
                              hint=f"remove or repoint {'them' if len(using) > 1 else 'it'} first "
                                   f"(llama-orch rm {' '.join(using)})")
    for m in chosen:
        try:
            forget(paths.models_dir, m)
        except OSError as exc:  # Windows: a llama-server still running from the file holds it open
            raise HubError(f"could not delete {m.path}: {exc.strerror or exc}",
                           hint="stop any llama-server still using it, then run this again") from None
        _console.success(f"removed {m.path}")


def _users(paths: HomePaths, models: list[LocalModel]) -> dict[Path, list[str]]:
    """Model file (resolved) -> the instances whose config names it; a config that does not load
    counts for every file it mentions by name, so `rm` never takes a model one might need."""
    from llama_orchestrator.config.loader import load_fleet

    fleet = load_fleet(paths, offline=True)
    users: dict[Path, list[str]] = {}
    for name, config in sorted(fleet.instances.items()):
        users.setdefault(Path(config.model.path).resolve(), []).append(name)
    broken = {name: file for name, file in fleet.config_files.items() if name not in fleet.instances}
    for name, file in sorted(broken.items()):
        text = Path(file).read_text(encoding="utf-8", errors="replace")
        for m in models:
            if Path(m.file).name in text:
                users.setdefault(m.path.resolve(), []).append(name)
    return users

"""`llama-orch pull`: fetch a GGUF model from Hugging Face (works with no daemon)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from llama_orchestrator.cli import _console
from llama_orchestrator.cli._context import context
from llama_orchestrator.errors import ConfigError, ConfigProblem

if TYPE_CHECKING:
    from llama_orchestrator.hub.choice import HubModel


def register(app: typer.Typer) -> None:
    app.command("pull")(pull)


def pull(
    ctx: typer.Context,
    model: str = typer.Argument(..., help="owner/repo[:QUANT] on Hugging Face, e.g. ggml-org/gemma-3-1b-it-GGUF:Q8_0"),
    revision: str = typer.Option("main", "--revision", help="Branch, tag or commit of the repo."),
) -> None:
    """Download a model into the home's models directory and print its path (a complete one is not
    fetched again; one cut midway goes on from where it stopped). Gated and private repos need
    HF_TOKEN in the environment.

    Example: llama-orch pull ggml-org/gemma-3-270m-it-GGUF:Q8_0
    """
    for path in fetch(ctx, model, revision):
        print(path)


def spec_of(text: str, option: str = "MODEL") -> HubModel:
    """`text` as owner/repo[:QUANT], else a command-line problem naming `option`."""
    from llama_orchestrator.hub.choice import parse_spec

    try:
        return parse_spec(text)
    except ValueError as exc:
        raise ConfigError([ConfigProblem("<command line>", option, str(exc))]) from None


def fetch(ctx: typer.Context, spec_text: str, revision: str = "main", option: str = "MODEL") -> list[str]:
    """The local paths of `spec_text`'s files, downloaded if need be (also `create --hf`)."""
    from llama_orchestrator.hub.download import pull_model

    spec = spec_of(spec_text, option)
    paths = context(ctx).paths
    paths.ensure()
    _console.info(f"fetching {spec} from Hugging Face into {paths.models_dir}")
    return [str(p) for p in pull_model(spec, paths.models_dir, revision)]

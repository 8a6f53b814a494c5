"""Fetching a model's GGUF file(s) from Hugging Face with `huggingface_hub`, into the home's models.

    pull_model(parse_spec("owner/repo:Q8_0"), paths.models_dir)   # -> [Path, ...]

`huggingface_hub` does the protocol: redirects to the storage backends, retrying a request the
Hub refused for a while (with backoff) and a download cut midway, `HF_TOKEN` (or `hf auth login`)
for gated repos and `HF_ENDPOINT` for a mirror. A Hub that cannot be reached at all fails at once
instead (huggingface_hub retries a refused connection for ~23 s, printing each try). A file
already complete is not fetched again, and one cut midway is resumed by the next pull
(hub.resumable). Files land in models/<owner>/<repo>/, under their names in the repo.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from llama_orchestrator.errors import HubError, HubNotFoundError
from llama_orchestrator.hub.choice import HubModel, NoSuchModelFile, choose_files

#: How long the first contact with the Hub may take before it counts as unreachable.
_CONNECT_TIMEOUT_S = 5.0
_OFFLINE_HINT = "a model file you already have needs no download: llama-orch create NAME --model PATH"


def pull_model(spec: HubModel, models_dir: Path, revision: str = "main") -> list[Path]:
    """Download the file(s) `spec` names; their local paths (a split model's parts in order)."""
    try:
        from huggingface_hub import HfApi
    except ImportError:
        raise HubError("fetching models needs huggingface_hub, which is not installed",
                       hint="pip install 'llama-orchestrator[hub]'") from None
    from huggingface_hub.errors import (
        EntryNotFoundError,
        GatedRepoError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    from llama_orchestrator.hub.resumable import fetch_file

    _check_reachable()
    where = f"{spec.repo} (revision {revision})"
    try:
        files = HfApi().list_repo_files(spec.repo, revision=revision)
        chosen = choose_files(spec, files)
        target = models_dir.joinpath(*spec.repo.split("/"))
        return [fetch_file(spec.repo, name, revision, target) for name in chosen]
    except NoSuchModelFile as exc:
        raise HubNotFoundError(str(exc)) from None
    except GatedRepoError:
        raise HubError(f"{spec.repo} is gated: accept its terms on huggingface.co, then give a token",
                       hint="set HF_TOKEN in the environment (or run `hf auth login`)") from None
    except (RepositoryNotFoundError, RevisionNotFoundError, EntryNotFoundError):
        raise HubNotFoundError(f"Hugging Face has no {where}, or it is private",
                               hint="check the name; for a private repo set HF_TOKEN") from None
    except HubError:
        raise
    except Exception as exc:  # HfHubHTTPError, OSError, and its HTTP client's own errors (httpx, httpx2 ...)
        raise HubError(f"could not download from {where}: {_first_line(exc)}",
                       hint="check the network (HF_ENDPOINT names a mirror), then run it again: "
                            "a download cut midway goes on from where it stopped") from None


def _check_reachable() -> None:
    """Raise HubError naming the Hub's address unless it answers one request within seconds."""
    from huggingface_hub import constants, get_session
    from huggingface_hub.errors import OfflineModeIsEnabled

    session = get_session()
    try:
        session.head(constants.ENDPOINT, timeout=_CONNECT_TIMEOUT_S)
    except OfflineModeIsEnabled:
        raise HubError("HF_HUB_OFFLINE is set, so nothing is fetched from Hugging Face",
                       hint=f"unset HF_HUB_OFFLINE; {_OFFLINE_HINT}") from None
    except _transport_errors(session) as exc:
        named = " (from HF_ENDPOINT)" if os.environ.get("HF_ENDPOINT") else ""
        raise HubError(f"cannot reach the Hugging Face Hub at {constants.ENDPOINT}{named}: {_first_line(exc)}",
                       hint="check the network connection and proxy settings (HTTPS_PROXY), or set HF_ENDPOINT "
                            f"to a mirror you can reach; {_OFFLINE_HINT}") from None


def _transport_errors(session: object) -> tuple[type[Exception], ...]:
    """The TransportError (refused, unresolvable, timed out, proxy) of the HTTP client huggingface_hub
    uses: httpx's in huggingface_hub 1.x, httpx2's in 2.x; found through the client's own class."""
    for cls in type(session).__mro__:
        error = getattr(sys.modules.get(cls.__module__.partition(".")[0]), "TransportError", None)
        if isinstance(error, type) and issubclass(error, Exception):
            return (error,)
    return ()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:300]

"""Fetching a model's GGUF file(s) from Hugging Face with `huggingface_hub`, into the home's models.

    pull_model(parse_spec("owner/repo:Q8_0"), paths.models_dir)   # -> [Path, ...]

`huggingface_hub` does the protocol: redirects to the storage backends, retrying a download cut
midway (and a request the network refused, with backoff, for about 20 s), the file's ETag,
`HF_TOKEN` (or `hf auth login`) for gated repos and `HF_ENDPOINT` for a mirror. A file already
complete is not fetched again. Files land in models/<owner>/<repo>/, under their names in the repo.
"""

from __future__ import annotations

from pathlib import Path

from llama_orchestrator.errors import HubError, HubNotFoundError
from llama_orchestrator.hub.choice import HubModel, NoSuchModelFile, choose_files


def pull_model(spec: HubModel, models_dir: Path, revision: str = "main") -> list[Path]:
    """Download the file(s) `spec` names; their local paths (a split model's parts in order)."""
    try:
        from huggingface_hub import HfApi, hf_hub_download
    except ImportError:
        raise HubError("fetching models needs huggingface_hub, which is not installed",
                       hint="pip install 'llama-orchestrator[hub]'") from None
    from huggingface_hub.errors import (
        EntryNotFoundError,
        GatedRepoError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    where = f"{spec.repo} (revision {revision})"
    try:
        files = HfApi().list_repo_files(spec.repo, revision=revision)
        chosen = choose_files(spec, files)
        target = models_dir.joinpath(*spec.repo.split("/"))
        return [Path(hf_hub_download(spec.repo, name, revision=revision, local_dir=target)) for name in chosen]
    except NoSuchModelFile as exc:
        raise HubNotFoundError(str(exc)) from None
    except GatedRepoError:
        raise HubError(f"{spec.repo} is gated: accept its terms on huggingface.co, then give a token",
                       hint="set HF_TOKEN in the environment (or run `hf auth login`)") from None
    except (RepositoryNotFoundError, RevisionNotFoundError, EntryNotFoundError):
        raise HubNotFoundError(f"Hugging Face has no {where}, or it is private",
                               hint="check the name; for a private repo set HF_TOKEN") from None
    except LocalEntryNotFoundError as exc:  # hf_hub_download could not connect
        raise HubError(f"could not download from {where}: {_first_line(exc)}",
                       hint="check the network (HF_ENDPOINT names a mirror)") from None
    except Exception as exc:  # HfHubHTTPError, OSError, and its HTTP client's own errors (httpx, httpx2 ...)
        raise HubError(f"could not download from {where}: {_first_line(exc)}",
                       hint="check the network (HF_ENDPOINT names a mirror), then run it again") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:300]

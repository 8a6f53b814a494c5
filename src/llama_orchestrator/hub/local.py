"""The models `pull` fetched, as they are on disk: models/<owner>/<repo>/<file>.gguf.

    local_models(paths.models_dir)                 # [LocalModel(repo, file, path, bytes), ...]
    named(local_models(...), parse_spec("a/b:Q8_0"))  # the files a spec names there (choice rules)
    forget(models_dir, model)                      # delete a file, huggingface_hub's notes on it, empty dirs
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from llama_orchestrator.hub.choice import HubModel, choose_files

HF_NOTES = Path(".cache") / "huggingface"  # huggingface_hub's per-download metadata inside a local_dir


@dataclass(frozen=True, slots=True)
class LocalModel:
    repo: str  # owner/name
    file: str  # its path in the repo
    path: Path
    bytes: int


def local_models(models_dir: Path) -> list[LocalModel]:
    """Every GGUF file under models/<owner>/<repo>/ (huggingface_hub's notes left out), sorted."""
    found = []
    for path in sorted(models_dir.glob("*/*/**/*.gguf")):
        parts = path.relative_to(models_dir).parts
        if ".cache" in parts or not path.is_file():
            continue
        found.append(LocalModel(f"{parts[0]}/{parts[1]}", "/".join(parts[2:]), path, path.stat().st_size))
    return found


def named(models: list[LocalModel], spec: HubModel) -> list[LocalModel]:
    """The local files `spec` names, chosen as `pull` would choose them (raises NoSuchModelFile)."""
    mine = {m.file: m for m in models if m.repo == spec.repo}
    return [mine[f] for f in choose_files(spec, sorted(mine))] if mine else []


def forget(models_dir: Path, model: LocalModel) -> None:
    """Delete `model`'s file and huggingface_hub's notes on it (all of them once its repo has no
    model left), then every folder left empty; files of the user's own stay."""
    repo_dir = models_dir.joinpath(*model.repo.split("/"))
    model.path.unlink(missing_ok=True)
    for note in (repo_dir / HF_NOTES / "download").glob(f"{Path(model.file).name}.*"):
        note.unlink(missing_ok=True)
    if not any(repo_dir.rglob("*.gguf")):
        shutil.rmtree(repo_dir / HF_NOTES.parts[0], ignore_errors=True)
    for folder, _subfolders, _files in os.walk(models_dir, topdown=False):  # deepest first
        if Path(folder) != models_dir and not any(Path(folder).iterdir()):
            Path(folder).rmdir()

"""Which GGUF files `owner/repo[:quant]` names, as llama.cpp's own `-hf` reads it (pure).

    spec = parse_spec("ggml-org/gemma-3-270m-it-GGUF:Q8_0")   # HubModel(repo, quant); ValueError if malformed
    choose_files(spec, files_in_repo)                          # the file, or every part of a split model

The quant is matched case-insensitively as a whole word of the file name (`Q4_K_M` in
`gemma-3-1b-it-Q4_K_M.gguf`, not in `...-Q4_K_M_L.gguf`). Without one, Q4_K_M is taken (llama.cpp's
default), else the repo's only model file. Projector files (`mmproj*`) are never the model.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DEFAULT_QUANT = "Q4_K_M"
_REPO = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$")
_SPLIT = re.compile(r"-(\d{5})-of-(\d{5})\.gguf$", re.IGNORECASE)


class NoSuchModelFile(ValueError):
    """The repo has no model file for the quant asked for; the message lists what it has."""


@dataclass(frozen=True, slots=True)
class HubModel:
    repo: str  # owner/name
    quant: str | None = None

    def __str__(self) -> str:
        return f"{self.repo}:{self.quant}" if self.quant else self.repo


def parse_spec(text: str) -> HubModel:
    repo, _, quant = text.strip().partition(":")
    if not _REPO.match(repo):
        raise ValueError(f"{text!r} is not a Hugging Face model: give owner/repo or owner/repo:QUANT, "
                         "e.g. ggml-org/gemma-3-270m-it-GGUF:Q8_0")
    if ":" in text and not quant:
        raise ValueError(f"{text!r} names no quant after ':'; give one (e.g. :Q4_K_M) or leave the ':' out")
    return HubModel(repo, quant or None)


def model_files(files: list[str]) -> list[str]:
    """The repo's GGUF model files (projectors left out), sorted."""
    return sorted(f for f in files if f.lower().endswith(".gguf") and "mmproj" not in f.rsplit("/", 1)[-1].lower())


def _has_quant(path: str, quant: str) -> bool:
    name = path.rsplit("/", 1)[-1]
    return re.search(rf"(?<![A-Za-z0-9]){re.escape(quant)}(?![A-Za-z0-9_])", name, re.IGNORECASE) is not None


def choose_files(spec: HubModel, files: list[str]) -> list[str]:
    """The file for `spec`, or all parts of a split model in order (raises NoSuchModelFile)."""
    models = model_files(files)
    if not models:
        raise NoSuchModelFile(f"{spec.repo} has no .gguf model file (llama-server needs GGUF)")
    if spec.quant:
        found = [f for f in models if _has_quant(f, spec.quant)]
    else:
        found = [f for f in models if _has_quant(f, DEFAULT_QUANT)] or (models if len(_sets(models)) == 1 else [])
    if not found:
        asked = f"quant {spec.quant}" if spec.quant else f"{DEFAULT_QUANT} (the default) nor a single model file"
        raise NoSuchModelFile(f"{spec.repo} has no {asked}; its model files: {', '.join(models)}; "
                              f"name one, e.g. {spec.repo}:{_quant_of(models[0])}")
    first = _sets(found)[0]  # one model: several matches are the parts of a split one, or the first of them
    return [f for f in found if _set_key(f) == first]


def _set_key(path: str) -> str:
    """The name a split model's parts share (`x-00001-of-00003.gguf` -> `x.gguf`); a whole file's own."""
    return _SPLIT.sub(".gguf", path)


def _sets(files: list[str]) -> list[str]:
    return sorted({_set_key(f) for f in files})


def _quant_of(path: str) -> str:
    stem = _set_key(path).rsplit("/", 1)[-1][: -len(".gguf")]
    return re.split(r"[-.]", stem)[-1] or DEFAULT_QUANT

"""Which files `owner/repo[:quant]` names (llama_orchestrator.hub.choice), without a network."""

from __future__ import annotations

import pytest

from llama_orchestrator.hub.choice import HubModel, NoSuchModelFile, choose_files, parse_spec

REPO = ["README.md", ".gitattributes", "gemma-3-1b-it-Q4_K_M.gguf", "gemma-3-1b-it-Q4_K_M_L.gguf",
        "gemma-3-1b-it-Q8_0.gguf", "gemma-3-1b-it-BF16.gguf", "mmproj-gemma-3-1b-it-f16.gguf",
        "big/gemma-3-1b-it-F32-00002-of-00002.gguf", "big/gemma-3-1b-it-F32-00001-of-00002.gguf"]


def test_parse() -> None:
    assert parse_spec(" ggml-org/gemma-3-1b-it-GGUF:Q8_0 ") == HubModel("ggml-org/gemma-3-1b-it-GGUF", "Q8_0")
    assert parse_spec("unsloth/Qwen3.5-9B-GGUF") == HubModel("unsloth/Qwen3.5-9B-GGUF", None)
    assert str(HubModel("a/b", "Q8_0")) == "a/b:Q8_0"
    for bad in ("gemma", "a/b/c", "/b", "a/", "a b/c", "a/b:"):
        with pytest.raises(ValueError):
            parse_spec(bad)


@pytest.mark.parametrize(("quant", "files"), [
    ("Q8_0", ["gemma-3-1b-it-Q8_0.gguf"]),
    ("q4_k_m", ["gemma-3-1b-it-Q4_K_M.gguf"]),  # any case; not the _L variant
    ("Q4_K_M_L", ["gemma-3-1b-it-Q4_K_M_L.gguf"]),
    (None, ["gemma-3-1b-it-Q4_K_M.gguf"]),  # llama.cpp's default
    ("F32", ["big/gemma-3-1b-it-F32-00001-of-00002.gguf", "big/gemma-3-1b-it-F32-00002-of-00002.gguf"]),
])
def test_choose(quant: str | None, files: list[str]) -> None:
    assert choose_files(HubModel("g/gemma", quant), REPO) == files


def test_a_repo_with_one_model_needs_no_quant_and_projectors_are_never_the_model() -> None:
    assert choose_files(HubModel("a/b"), ["m-IQ2_XS.gguf", "mmproj-F16.gguf"]) == ["m-IQ2_XS.gguf"]
    two_parts = ["m-00002-of-00002.gguf", "m-00001-of-00002.gguf"]
    assert choose_files(HubModel("a/b"), two_parts) == sorted(two_parts)


def test_what_cannot_be_chosen_says_what_there_is() -> None:
    cases = [
        (HubModel("g/gemma", "Q2_K"), REPO, "g/gemma has no quant Q2_K; its model files: "
         "big/gemma-3-1b-it-F32-00001-of-00002.gguf, big/gemma-3-1b-it-F32-00002-of-00002.gguf, "
         "gemma-3-1b-it-BF16.gguf, gemma-3-1b-it-Q4_K_M.gguf, gemma-3-1b-it-Q4_K_M_L.gguf, gemma-3-1b-it-Q8_0.gguf; "
         "name one, e.g. g/gemma:F32"),
        (HubModel("a/b"), ["a-Q8_0.gguf", "b-Q8_0.gguf"], "a/b has no Q4_K_M (the default) nor a single model file; "
         "its model files: a-Q8_0.gguf, b-Q8_0.gguf; name one, e.g. a/b:Q8_0"),
        (HubModel("a/b"), ["model.safetensors", "mmproj.gguf"],
         "a/b has no .gguf model file (llama-server needs GGUF)"),
    ]
    for spec, files, words in cases:
        with pytest.raises(NoSuchModelFile) as refused:
            choose_files(spec, files)
        assert str(refused.value) == words

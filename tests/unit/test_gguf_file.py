"""`llama_orchestrator.gguf_file`: whether a model file is GGUF, its size and time, and its metadata."""

from __future__ import annotations

import os
from pathlib import Path

import gguf
import numpy as np
import pytest
from tests.support.tiny_model import N_CTX, N_EMBD, N_HEAD, N_HEAD_KV, N_LAYERS

from llama_orchestrator import gguf_file


def test_the_tiny_model_says_what_it_is(tiny_model: Path) -> None:
    facts = gguf_file.facts(tiny_model)
    assert facts == gguf_file.GgufFacts(architecture="llama", name="llama-orchestrator tiny test model",
                                        file_type=0, context_length=N_CTX, block_count=N_LAYERS,
                                        embedding_length=N_EMBD, head_count=N_HEAD, head_count_kv=N_HEAD_KV,
                                        pooling_type=gguf.PoolingType.MEAN)  # what Ollama tells embedders by
    assert facts.quantization == "F32"
    assert facts.describe() == f"llama · F32 · trained for {N_CTX} tokens"
    assert gguf_file.problem(tiny_model) is None


def test_metadata_written_after_a_large_tokenizer_is_found(tmp_path: Path) -> None:
    """Converters write general.file_type after the tokenizer's arrays (6.5 MB into Gemma 3):
    the reader reads on past its first read until it finds it."""
    path = tmp_path / "big-vocab.gguf"
    writer = gguf.GGUFWriter(str(path), "qwen2")
    writer.add_size_label("7.6B")
    writer.add_context_length(32768)
    writer.add_token_list([f"token-{i:06d}" for i in range(60_000)])  # ~1 MB of strings
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_Q4_K_M)
    writer.add_tensor("x", np.zeros(4, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    assert path.stat().st_size > 4 * gguf_file.FIRST_READ
    facts = gguf_file.facts(path)
    assert (facts.architecture, facts.size_label, facts.context_length) == ("qwen2", "7.6B", 32768)
    assert (facts.file_type, facts.quantization) == (15, "Q4_K_M")
    assert facts.describe() == "qwen2 · 7.6B · Q4_K_M · trained for 32768 tokens"


def test_every_metadata_key_is_listed_past_a_large_tokenizer(tmp_path: Path, tiny_model: Path) -> None:
    """metadata_keys walks every value: arrays of strings and of numbers, then a chat template
    written last (what tells a model with a template of its own from one without)."""
    path = tmp_path / "templated.gguf"
    writer = gguf.GGUFWriter(str(path), "gemma3")
    writer.add_token_list([f"token-{i:06d}" for i in range(60_000)])
    writer.add_token_scores([0.5] * 60_000)
    writer.add_bool("tokenizer.ggml.add_bos_token", True)
    writer.add_chat_template("{{ messages }}")
    writer.add_tensor("x", np.zeros(4, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    keys = gguf_file.metadata_keys(path)
    assert keys is not None and keys[-1] == "tokenizer.chat_template", keys
    assert {"general.architecture", "tokenizer.ggml.tokens", "tokenizer.ggml.scores"} <= set(keys)
    tiny = gguf_file.metadata_keys(tiny_model)
    assert tiny is not None and "llama.context_length" in tiny and "tokenizer.chat_template" not in tiny
    assert gguf_file.metadata_keys(tmp_path / "missing.gguf") is None
    cut = tmp_path / "cut.gguf"  # the metadata ends early: not known, rather than a wrong answer
    cut.write_bytes(path.read_bytes()[:100_000])
    assert gguf_file.metadata_keys(cut) is None


def test_quantization_names_are_llama_cpps() -> None:
    """The table against the gguf package's copy of llama.cpp's llama_ftype."""
    for member in gguf.LlamaFileType:
        if member.name != "GUESSED":
            expected = member.name.removeprefix("MOSTLY_").removeprefix("ALL_")
            assert gguf_file.QUANTIZATIONS[member.value] == expected, member
    assert gguf_file.GgufFacts(file_type=9999).quantization == "type 9999"
    assert gguf_file.GgufFacts().quantization == ""


@pytest.mark.parametrize(("content", "says"), [
    (b"", "is empty (an interrupted download?)"),
    (b"version https://git-lfs.github.com/spec/v1\noid sha256:0\nsize 1\n", "is a Git LFS pointer, not the model: "
                                                                           "run `git lfs pull`"),
    ((19).to_bytes(8, "little") + b'{"__metadata__":{}}', "is a safetensors file: convert it to GGUF"),
    (b"<!DOCTYPE html><html>", "is not a GGUF model file: it starts with b'<!DOCTYP' where a GGUF file starts with"),
])
def test_a_file_llama_server_cannot_load_is_named_with_what_to_do(tmp_path: Path, content: bytes, says: str) -> None:
    path = tmp_path / "model.gguf"
    path.write_bytes(content)
    problem = gguf_file.problem(path)
    assert problem is not None and str(path) in problem and says in problem, problem
    assert gguf_file.facts(path) == gguf_file.GgufFacts() and gguf_file.facts(path).describe() == ""


def test_a_missing_file_a_directory_or_a_missing_part_of_a_split_model(tmp_path: Path) -> None:
    assert gguf_file.problem("/nowhere/model.gguf") == "model file not found: /nowhere/model.gguf"
    assert gguf_file.problem(tmp_path) == f"{tmp_path} is a directory: model.path names the .gguf file (the first " \
                                          "part of a split model)"
    parts = [tmp_path / f"big-{k:05d}-of-00003.gguf" for k in (1, 2, 3)]
    parts[0].write_bytes(b"GGUF" + b"\0" * 16)
    assert gguf_file.problem(parts[0]) == (f"{parts[0]} is one part of a split model, and big-00002-of-00003.gguf, "
                                           "big-00003-of-00003.gguf are missing (an unfinished download?)")
    parts[1].write_bytes(b"GGUF" + b"\0" * 16)
    assert gguf_file.problem(parts[0]).endswith("and big-00003-of-00003.gguf is missing (an unfinished download?)")
    parts[2].write_bytes(b"GGUF" + b"\0" * 16)
    assert gguf_file.problem(parts[0]) is None
    assert gguf_file.facts("/nowhere/model.gguf") == gguf_file.GgufFacts()
    assert gguf_file.size_and_mtime("/nowhere/model.gguf") == (0, 0.0)


def test_a_split_model_counts_all_its_parts(tmp_path: Path) -> None:
    parts = [tmp_path / f"big-{k:05d}-of-00003.gguf" for k in (1, 2, 3)]
    for k, part in enumerate(parts, 1):
        part.write_bytes(b"x" * 100 * k)
        os.utime(part, (1_700_000_000 + k, 1_700_000_000 + k))
    assert gguf_file.parts(parts[1]) == parts
    assert gguf_file.size_and_mtime(parts[0]) == (600, 1_700_000_003.0)
    parts[2].unlink()  # a part missing: what is there is counted
    assert gguf_file.size_and_mtime(parts[0]) == (300, 1_700_000_002.0)
    assert gguf_file.parts(tmp_path / "one.gguf") == [tmp_path / "one.gguf"]

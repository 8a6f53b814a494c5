"""A tiny random-weight llama GGUF for tests and the demo (DESIGN section 7).

The real llama-server needs a model to load; a 160 KB file generated in milliseconds with
PyPI ``gguf`` (the llama.cpp project's own writer) loads in well under a second and answers
``/health``, ``/v1/models``, ``/v1/chat/completions`` (nonsense text) and, when the server runs
with ``--embeddings``, ``/v1/embeddings`` (the model declares mean pooling).

Shapes: GGUF stores dimensions innermost first, and ``GGUFWriter`` writes a numpy shape
reversed, so a llama.cpp tensor declared ``{n_embd, n_vocab}`` is a numpy array of shape
``(n_vocab, n_embd)``.

Run as a script to write one: ``python tests/support/tiny_model.py OUT.gguf``.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import gguf
import numpy as np

N_LAYERS = 2
N_EMBD = 32
N_HEAD = 2
N_HEAD_KV = 2
N_FF = 64
# 8192 lets a request with ignore_eos stream for seconds (a 'long' stream for disconnect tests)
# while the KV cache stays tiny (2 MB).
N_CTX = 8192
SEED = 20240601

UNK_ID, BOS_ID, EOS_ID = 0, 1, 2
FIM_PRE_ID = 3  # the FIM variant only: prefix, suffix and middle tokens are 3, 4 and 5
_FIM_PIECES = ["<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>"]
_LETTERS = "abcdefghijklmnopqrstuvwxyz"
# Every piece must be unique (llama.cpp asserts id_to_token.size() == token_to_id.size()).
_PIECES = ["▁", "▁the", "▁is", ".", ",", "!", "?", *_LETTERS, *(f"▁{c}" for c in _LETTERS)]


def _vocab(fim: bool = False) -> tuple[list[str], list[float], list[int]]:
    assert len(set(_PIECES)) == len(_PIECES), "duplicate vocabulary piece"
    tokens = ["<unk>", "<s>", "</s>"]
    types = [gguf.TokenType.UNKNOWN, gguf.TokenType.CONTROL, gguf.TokenType.CONTROL]
    if fim:  # fill-in-the-middle's three control tokens, at FIM_PRE_ID.. (llama-server's /infill needs them)
        tokens += _FIM_PIECES
        types += [gguf.TokenType.CONTROL] * len(_FIM_PIECES)
    for byte in range(256):
        tokens.append(f"<0x{byte:02X}>")
        types.append(gguf.TokenType.BYTE)
    for piece in _PIECES:
        tokens.append(piece)
        types.append(gguf.TokenType.NORMAL)
    # SPM merges by score: longer pieces get higher scores so "▁a" beats "▁" + "a".
    scores = [
        0.0 if t != gguf.TokenType.NORMAL else -100.0 + 10.0 * len(tok)
        for tok, t in zip(tokens, types, strict=True)
    ]
    return tokens, scores, [int(t) for t in types]


def _tensors(n_vocab: int) -> list[tuple[str, np.ndarray]]:
    rng = np.random.default_rng(SEED)

    def weight(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape) * 0.02).astype(np.float32)

    def ones(n: int) -> np.ndarray:
        return np.ones((n,), dtype=np.float32)

    head_dim = N_EMBD // N_HEAD
    kv_dim = head_dim * N_HEAD_KV
    out = [("token_embd.weight", weight(n_vocab, N_EMBD)), ("output_norm.weight", ones(N_EMBD))]
    out.append(("output.weight", weight(n_vocab, N_EMBD)))
    for i in range(N_LAYERS):
        p = f"blk.{i}"
        out += [
            (f"{p}.attn_norm.weight", ones(N_EMBD)),
            (f"{p}.attn_q.weight", weight(N_HEAD * head_dim, N_EMBD)),
            (f"{p}.attn_k.weight", weight(kv_dim, N_EMBD)),
            (f"{p}.attn_v.weight", weight(kv_dim, N_EMBD)),
            (f"{p}.attn_output.weight", weight(N_EMBD, N_HEAD * head_dim)),
            (f"{p}.ffn_norm.weight", ones(N_EMBD)),
            (f"{p}.ffn_gate.weight", weight(N_FF, N_EMBD)),
            (f"{p}.ffn_up.weight", weight(N_FF, N_EMBD)),
            (f"{p}.ffn_down.weight", weight(N_EMBD, N_FF)),
        ]
    return out


def _write(path: Path, fim: bool) -> None:
    tokens, scores, types = _vocab(fim)
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("llama-orchestrator tiny test model")
    writer.add_context_length(N_CTX)
    writer.add_embedding_length(N_EMBD)
    writer.add_block_count(N_LAYERS)
    writer.add_feed_forward_length(N_FF)
    writer.add_head_count(N_HEAD)
    writer.add_head_count_kv(N_HEAD_KV)
    writer.add_rope_dimension_count(N_EMBD // N_HEAD)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    # Mean pooling, so a server started with just --embeddings answers /v1/embeddings (the
    # default, none, is refused as "not OAI compatible"); completions ignore it.
    writer.add_pooling_type(gguf.PoolingType.MEAN)
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    writer.add_bos_token_id(BOS_ID)
    writer.add_eos_token_id(EOS_ID)
    writer.add_unk_token_id(UNK_ID)
    writer.add_add_bos_token(True)
    writer.add_add_eos_token(False)
    if fim:
        for offset, part in enumerate(("pre", "suf", "mid")):
            writer.add_uint32(f"tokenizer.ggml.fim_{part}_token_id", FIM_PRE_ID + offset)
    for name, array in _tensors(len(tokens)):
        writer.add_tensor(name, array)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def write_tiny_model(path: Path, fim: bool = False) -> Path:
    """Write the tiny model to ``path`` (same bytes every time) via a temp file and rename;
    `fim` adds fill-in-the-middle tokens (a different model: every other token id moves up 3)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        _write(tmp, fim)
        tmp.chmod(0o644)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python tests/support/tiny_model.py OUT.gguf")
    print(write_tiny_model(Path(sys.argv[1])))

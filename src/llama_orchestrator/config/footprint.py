"""How much memory a llama-server holds once loaded, estimated from its config and model file.

    fp = estimate(config, gguf_file.facts(path), weights)   # weights: the model file's bytes
    fp.total, fp.describe()  # bytes; "~893.5MiB: weights 241.4MiB, KV cache 576.0MiB (32768 tokens, f16), ..."
    pool_of(config)          # "ram" or "vram": the budget it counts against

The gateway's memory budgets (`gateway.ram_budget_gib`, `vram_budget_gib`) use it for an
instance that has not run yet with its `fingerprint`; once one has, the daemon knows the most it
was seen holding (kept in the store), which also counts what grows in use (llama-server's
prompt cache). Layers that attend
to a sliding window (Gemma 2 and 3, Cohere 2, gpt-oss: `SLIDING_WINDOW_EVERY`) keep only the
window's cells, as llama.cpp sizes them. `memory_gib` in an instance's config overrides both.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Literal

from llama_orchestrator.config.models import InstanceConfig
from llama_orchestrator.gguf_file import GgufFacts
from llama_orchestrator.units import size

Pool = Literal["ram", "vram"]

MIB = 1024 * 1024
GIB = 1024 * MIB
# bytes per element of llama.cpp's KV cache types (-ctk / -ctv); a quantized block of 32 elements
# carries one or two f16 scales
CACHE_TYPE_BYTES = {
    "f32": 4.0, "f16": 2.0, "bf16": 2.0, "q8_0": 34 / 32, "q5_1": 24 / 32, "q5_0": 22 / 32,
    "q4_1": 20 / 32, "q4_0": 18 / 32, "iq4_nl": 18 / 32,
}
BASE_OVERHEAD = 64 * MIB  # the process itself, its output buffer and a small model's compute buffer
OVERHEAD_SHARE = 0.05  # compute buffers grow with the model


# Architectures whose layers mostly attend to a sliding window, and how llama.cpp lays them out:
# every n-th layer attends to the whole context, the others keep a KV cache of the window only
SLIDING_WINDOW_EVERY = {"gemma2": 2, "gemma3": 6, "gemma-embedding": 6, "cohere2": 4, "gpt-oss": 2}


@dataclass(frozen=True, slots=True)
class KvShape:
    """The model's dimensions that size its KV cache, per token."""

    layers: int
    kv_heads: int
    key_length: int
    value_length: int
    window_layers: int = 0  # layers that attend to a sliding window only
    window: int = 0  # that window, in tokens

    @classmethod
    def of(cls, facts: GgufFacts) -> KvShape | None:
        """From a model file's metadata as llama.cpp reads it (GQA heads default to the heads,
        head sizes to embedding / heads); None when it does not say enough."""
        layers, heads = facts.block_count, facts.head_count
        kv = facts.head_count_kv or heads
        per_head = facts.embedding_length // heads if facts.embedding_length and heads else None
        key, value = facts.key_length or per_head, facts.value_length or per_head
        if not layers or not kv or not key or not value:
            return None
        every = SLIDING_WINDOW_EVERY.get(facts.architecture)
        if every is None or not facts.sliding_window:
            return cls(layers, kv, key, value)
        return cls(layers, kv, key, value, layers - layers // every, facts.sliding_window)


@dataclass(frozen=True, slots=True)
class Footprint:
    weights: int
    kv_cache: int
    overhead: int
    tokens: int = 0  # the context the KV cache was sized for
    cache_types: str = "f16"

    @property
    def total(self) -> int:
        return self.weights + self.kv_cache + self.overhead

    def describe(self) -> str:
        """`~890.0MiB: weights 235.2MiB, KV cache 576.0MiB (32768 tokens, f16), overhead 75.8MiB`"""
        kv = f"KV cache {size(self.kv_cache)} ({self.tokens} tokens, {self.cache_types})" if self.tokens else \
            "KV cache not known (the model file does not give its shape)"
        return f"~{size(self.total)}: weights {size(self.weights)}, {kv}, overhead {size(self.overhead)}"


def kv_cache_bytes(shape: KvShape, tokens: int, k_type: str = "f16", v_type: str = "f16",
                   window_cells: int | None = None) -> int:
    """llama.cpp's KV cache for `tokens` cells in every full-attention layer and `window_cells`
    (at most `tokens`) in each sliding-window layer; unknown cache types count as f16."""
    k = CACHE_TYPE_BYTES.get(k_type.lower(), 2.0)
    v = CACHE_TYPE_BYTES.get(v_type.lower(), 2.0)
    windowed = min(tokens, window_cells) if window_cells is not None else tokens
    cells = (shape.layers - shape.window_layers) * tokens + shape.window_layers * windowed
    return int(cells * shape.kv_heads * (shape.key_length * k + shape.value_length * v))


def footprint(weights: int, shape: KvShape | None, tokens: int, k_type: str = "f16", v_type: str = "f16",
              offloaded: float = 1.0, window_cells: int | None = None) -> Footprint:
    """What one instance holds in the memory being counted: `offloaded` of its weights (the share
    of layers on the GPU for a GPU budget, 1.0 on the CPU), its whole KV cache and the overhead."""
    held = int(weights * offloaded)
    kv = kv_cache_bytes(shape, tokens, k_type, v_type, window_cells) if shape is not None and tokens > 0 else 0
    types = k_type if k_type == v_type else f"K {k_type}, V {v_type}"
    return Footprint(held, kv, BASE_OVERHEAD + int(held * OVERHEAD_SHARE), tokens if shape else 0, types)


def declared(config: InstanceConfig) -> int | None:
    """The config's own word on what the instance holds (memory_gib), in bytes; None when unset."""
    return None if config.memory_gib is None else int(config.memory_gib * GIB)


def fingerprint(config: InstanceConfig) -> str:
    """What decides how much an instance holds, as a short digest: its model section (file,
    context, slots, ...; not the names it is served under), GPU section and extra arguments. What
    was measured under one fingerprint says nothing about another."""
    model = config.model.model_dump(mode="json", exclude={"alias", "aliases"})
    parts = [model, config.gpu.model_dump(mode="json"), config.args]
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def pool_of(config: InstanceConfig) -> Pool:
    """Which budget an instance counts against: `vram` when it offloads to a GPU, else `ram`."""
    return "ram" if config.gpu.backend == "cpu" or config.gpu.layers == 0 else "vram"


def estimate(config: InstanceConfig, facts: GgufFacts, weights: int) -> Footprint:
    """`footprint` for an instance's config, its model file's metadata and size (all parts)."""
    shape = KvShape.of(facts)
    tokens = config.model.context_size or facts.context_length or 4096  # 0 or unset: the model's own
    layers = config.gpu.layers
    offloaded = 1.0
    if pool_of(config) == "vram" and isinstance(layers, int) and layers >= 0 and facts.block_count:
        offloaded = min(1.0, layers / (facts.block_count + 1))  # + 1: the output layer
    window_cells = None
    if shape is not None and shape.window_layers and "--swa-full" not in config.args:
        # llama.cpp's sliding-window cache: the window for each sequence (slot) and one micro-batch
        parallel = config.model.parallel if config.model.parallel and config.model.parallel > 0 else 4
        window_cells = shape.window * parallel + (config.model.ubatch_size or 512)
    return footprint(weights, shape, tokens, _arg(config.args, ("-ctk", "--cache-type-k")),
                     _arg(config.args, ("-ctv", "--cache-type-v")), offloaded, window_cells)


def _arg(args: list[str], names: tuple[str, ...], default: str = "f16") -> str:
    """The value of the last of `names` in `args` (`-ctk q8_0` or `--cache-type-k=q8_0`)."""
    value = default
    for i, arg in enumerate(args):
        flag, eq, inline = arg.partition("=")
        if flag in names:
            value = inline if eq else (args[i + 1] if i + 1 < len(args) else value)
    return value

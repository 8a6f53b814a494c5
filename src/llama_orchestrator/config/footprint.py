"""How much memory a llama-server holds once loaded, estimated from its config and model file.

    fp = estimate(config, gguf_file.facts(path), weights)   # weights: the model file's bytes
    fp.total, fp.describe()  # bytes; "~893.5MiB: weights 241.4MiB, KV cache 576.0MiB (32768 tokens, f16), ..."
    pool_of(config)          # "ram" or "vram": the budget it counts against

The gateway's memory budgets (`gateway.ram_budget_gib`, `vram_budget_gib`) use it for an
instance that has not run yet; once one has run, the daemon knows the resident size it
reached, which also counts what grows in use (llama-server's prompt cache). The estimate
leans high: every layer's KV cache is counted at full context, so models with sliding-window
layers (Gemma 2 and 3) hold less than it says. `memory_gib` in an instance's config overrides both.
"""

from __future__ import annotations

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


@dataclass(frozen=True, slots=True)
class KvShape:
    """The model's dimensions that size its KV cache, per token."""

    layers: int
    kv_heads: int
    key_length: int
    value_length: int

    @classmethod
    def of(cls, layers: int | None, embedding: int | None = None, heads: int | None = None,
           kv_heads: int | None = None, key_length: int | None = None,
           value_length: int | None = None) -> KvShape | None:
        """From a model file's metadata as llama.cpp reads it (GQA heads default to the heads,
        head sizes to embedding / heads); None when it does not say enough."""
        kv = kv_heads or heads
        per_head = embedding // heads if embedding and heads else None
        key, value = key_length or per_head, value_length or per_head
        if not layers or not kv or not key or not value:
            return None
        return cls(layers, kv, key, value)


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


def kv_cache_bytes(shape: KvShape, tokens: int, k_type: str = "f16", v_type: str = "f16") -> int:
    """llama.cpp's KV cache for `tokens` cells in every layer (unknown types count as f16)."""
    k = CACHE_TYPE_BYTES.get(k_type.lower(), 2.0)
    v = CACHE_TYPE_BYTES.get(v_type.lower(), 2.0)
    return int(shape.layers * tokens * shape.kv_heads * (shape.key_length * k + shape.value_length * v))


def footprint(weights: int, shape: KvShape | None, tokens: int, k_type: str = "f16", v_type: str = "f16",
              offloaded: float = 1.0) -> Footprint:
    """What one instance holds in the memory being counted: `offloaded` of its weights (the share
    of layers on the GPU for a GPU budget, 1.0 on the CPU), its whole KV cache and the overhead."""
    held = int(weights * offloaded)
    kv = kv_cache_bytes(shape, tokens, k_type, v_type) if shape is not None and tokens > 0 else 0
    types = k_type if k_type == v_type else f"K {k_type}, V {v_type}"
    return Footprint(held, kv, BASE_OVERHEAD + int(held * OVERHEAD_SHARE), tokens if shape else 0, types)


def pool_of(config: InstanceConfig) -> Pool:
    """Which budget an instance counts against: `vram` when it offloads to a GPU, else `ram`."""
    return "ram" if config.gpu.backend == "cpu" or config.gpu.layers == 0 else "vram"


def estimate(config: InstanceConfig, facts: GgufFacts, weights: int) -> Footprint:
    """`footprint` for an instance's config, its model file's metadata and size (all parts)."""
    shape = KvShape.of(facts.block_count, facts.embedding_length, facts.head_count, facts.head_count_kv,
                       facts.key_length, facts.value_length)
    tokens = config.model.context_size or facts.context_length or 4096  # 0 or unset: the model's own
    layers = config.gpu.layers
    offloaded = 1.0
    if pool_of(config) == "vram" and isinstance(layers, int) and layers >= 0 and facts.block_count:
        offloaded = min(1.0, layers / (facts.block_count + 1))  # + 1: the output layer
    return footprint(weights, shape, tokens, _arg(config.args, ("-ctk", "--cache-type-k")),
                     _arg(config.args, ("-ctv", "--cache-type-v")), offloaded)


def _arg(args: list[str], names: tuple[str, ...], default: str = "f16") -> str:
    """The value of the last of `names` in `args` (`-ctk q8_0` or `--cache-type-k=q8_0`)."""
    value = default
    for i, arg in enumerate(args):
        flag, eq, inline = arg.partition("=")
        if flag in names:
            value = inline if eq else (args[i + 1] if i + 1 < len(args) else value)
    return value

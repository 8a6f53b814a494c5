"""config.footprint: what an instance holds once loaded, estimated from its model file and flags."""

from __future__ import annotations

import pytest

from llama_orchestrator.config import footprint as m
from llama_orchestrator.config.models import InstanceConfig
from llama_orchestrator.gguf_file import GgufFacts

MIB = m.MIB
# Gemma 3 270M as its GGUF file describes it (the model the real-server tests run)
GEMMA = GgufFacts(architecture="gemma3", context_length=32768, block_count=18, embedding_length=640,
                  head_count=4, head_count_kv=1, key_length=256, value_length=256)


def config(**changes: object) -> InstanceConfig:
    raw: dict[str, object] = {"name": "a", "model": {"path": "/m.gguf"}, "server": {"port": 9000}}
    raw.update(changes)
    return InstanceConfig.model_validate(raw)


def test_kv_cache_is_llama_cpps_per_layer_size() -> None:
    # llama-server's own log for Gemma 3 270M, its 3 full-attention layers at -c 4096:
    # "llama_kv_cache: size = 12.00 MiB (4096 cells, 3 layers, 4/1 seqs), K (f16): 6.00 MiB, V (f16): 6.00 MiB"
    shape = m.KvShape(layers=3, kv_heads=1, key_length=256, value_length=256)
    assert m.kv_cache_bytes(shape, 4096) == 12 * MIB
    assert m.kv_cache_bytes(shape, 4096, "q8_0", "q8_0") == int(12 * MIB * 34 / 64)
    assert m.kv_cache_bytes(shape, 4096, "q4_0", "f16") == int(6 * MIB * 18 / 64) + 6 * MIB
    assert m.kv_cache_bytes(shape, 4096, "no-such-type", "F16") == 12 * MIB  # unknown: as f16


def test_shape_defaults_are_llama_cpps() -> None:
    assert m.KvShape.of(layers=2, embedding=32, heads=2) == m.KvShape(2, 2, 16, 16)  # no GQA, head = 32/2
    assert m.KvShape.of(layers=18, embedding=640, heads=4, kv_heads=1, key_length=256, value_length=256) == \
        m.KvShape(18, 1, 256, 256)
    assert m.KvShape.of(layers=None, embedding=640, heads=4) is None
    assert m.KvShape.of(layers=2, embedding=None, heads=None) is None


def test_estimate_follows_context_cache_types_and_offload() -> None:
    weights = 246 * MIB
    whole = m.estimate(config(), GEMMA, weights)  # no context_size: the model's own 32768 tokens
    assert whole.kv_cache == 18 * 32768 * 1024 and whole.tokens == 32768
    assert whole.weights == weights and whole.total == weights + whole.kv_cache + whole.overhead
    assert whole.overhead == m.BASE_OVERHEAD + int(weights * m.OVERHEAD_SHARE)
    short = m.estimate(config(model={"path": "/m.gguf", "context_size": 4096}), GEMMA, weights)
    assert short.kv_cache == whole.kv_cache // 8
    quantized = m.estimate(config(model={"path": "/m.gguf", "context_size": 4096},
                                  args=["-ctk", "q8_0", "--cache-type-v=q8_0"]), GEMMA, weights)
    assert quantized.kv_cache == int(short.kv_cache * 34 / 64) and quantized.cache_types == "q8_0"
    half = m.estimate(config(gpu={"backend": "cuda", "layers": 19 // 2}), GEMMA, weights)
    assert half.weights == int(weights * 9 / 19)  # 9 of 18 layers + the output layer on the GPU
    assert m.estimate(config(gpu={"backend": "cuda", "layers": 99}), GEMMA, weights).weights == weights


@pytest.mark.parametrize(("gpu", "pool"), [
    ({}, "ram"), ({"backend": "cpu", "layers": 99}, "ram"), ({"backend": "cuda"}, "vram"),
    ({"backend": "vulkan", "layers": "all"}, "vram"), ({"backend": "cuda", "layers": 0}, "ram"),
])
def test_pool_is_where_the_weights_go(gpu: dict[str, object], pool: str) -> None:
    assert m.pool_of(config(gpu=gpu)) == pool


def test_a_model_file_without_its_shape_counts_weights_and_overhead_only() -> None:
    fp = m.estimate(config(), GgufFacts(), 100 * MIB)
    assert fp.kv_cache == 0 and fp.total == 100 * MIB + fp.overhead
    assert "KV cache not known" in fp.describe()


def test_describe_names_each_part() -> None:
    fp = m.estimate(config(model={"path": "/m.gguf", "context_size": 4096}), GEMMA, 246 * MIB)
    assert fp.describe() == "~394.3MiB: weights 246.0MiB, KV cache 72.0MiB (4096 tokens, f16), overhead 76.3MiB"

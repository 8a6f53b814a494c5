"""config.footprint: what an instance holds once loaded, estimated from its model file and flags."""

from __future__ import annotations

import pytest

from llama_orchestrator.config import footprint as m
from llama_orchestrator.config.models import InstanceConfig
from llama_orchestrator.gguf_file import GgufFacts

MIB = m.MIB
# Gemma 3 270M as its GGUF file describes it (the demo's model): 18 layers, 3 of them full attention
GEMMA = GgufFacts(architecture="gemma3", context_length=32768, block_count=18, embedding_length=640,
                  head_count=4, head_count_kv=1, key_length=256, value_length=256, sliding_window=512)
NO_WINDOW = GgufFacts(architecture="llama", context_length=32768, block_count=18, embedding_length=640,
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
    no_gqa = GgufFacts(architecture="llama", block_count=2, embedding_length=32, head_count=2)
    assert m.KvShape.of(no_gqa) == m.KvShape(2, 2, 16, 16)  # KV heads = heads, head = 32 / 2
    assert m.KvShape.of(GEMMA) == m.KvShape(18, 1, 256, 256, window_layers=15, window=512)
    assert m.KvShape.of(NO_WINDOW) == m.KvShape(18, 1, 256, 256)
    assert m.KvShape.of(GgufFacts(architecture="llama", embedding_length=640, head_count=4)) is None
    assert m.KvShape.of(GgufFacts(architecture="llama", block_count=2)) is None


def test_sliding_window_layers_keep_the_window_for_each_slot_and_a_micro_batch() -> None:
    # llama-server's own log for Gemma 3 270M at -c 4096 with 4 automatic slots:
    # "llama_kv_cache: size = 12.00 MiB (4096 cells, 3 layers, 4/1 seqs)" and
    # "llama_kv_cache: size = 37.50 MiB (2560 cells, 15 layers, 4/1 seqs)"
    fp = m.estimate(config(model={"path": "/m.gguf", "context_size": 4096}), GEMMA, 246 * MIB)
    assert fp.kv_cache == 12 * MIB + int(37.5 * MIB)
    two_slots = m.estimate(config(model={"path": "/m.gguf", "context_size": 4096, "parallel": 2}), GEMMA, 0)
    assert two_slots.kv_cache == 12 * MIB + 15 * (512 * 2 + 512) * 1024
    full = m.estimate(config(model={"path": "/m.gguf", "context_size": 4096}, args=["--swa-full"]), GEMMA, 0)
    assert full.kv_cache == 18 * 4096 * 1024
    short = m.estimate(config(model={"path": "/m.gguf", "context_size": 1024}), GEMMA, 0)
    assert short.kv_cache == 18 * 1024 * 1024  # a window wider than the context holds the context


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
    fp = m.estimate(config(model={"path": "/m.gguf", "context_size": 4096}), NO_WINDOW, 246 * MIB)
    assert fp.describe() == "~394.3MiB: weights 246.0MiB, KV cache 72.0MiB (4096 tokens, f16), overhead 76.3MiB"


def test_fingerprint_changes_with_what_the_process_holds_and_only_with_that() -> None:
    base = m.fingerprint(config())
    assert len(base) == 16 and base == m.fingerprint(config())
    for same in (config(on_demand=True, idle_ttl_s=60), config(name="b"),
                 config(model={"path": "/m.gguf", "alias": "chat"}), config(on_demand=True, memory_gib=3)):
        assert m.fingerprint(same) == base
    for other in (config(model={"path": "/other.gguf"}), config(model={"path": "/m.gguf", "context_size": 4096}),
                  config(gpu={"backend": "cuda"}), config(args=["-ctk", "q8_0"])):
        assert m.fingerprint(other) != base

"""Warnings about configs that run but do not fit: the model's trained context, the machine's cores,
the gateway's memory budgets.

Both are advice, never errors: llama-server starts either way, and the user may know better.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from llama_orchestrator import gguf_file
from llama_orchestrator.config import footprint
from llama_orchestrator.config.models import InstanceConfig
from llama_orchestrator.config.orchestrator import GatewayConfig
from llama_orchestrator.errors import ConfigProblem

_ROPE_FLAGS = ("--rope-scaling", "--rope-scale", "--rope-freq-scale", "--yarn-orig-ctx")


def beyond_training(config: InstanceConfig) -> str | None:
    """A warning when a slot gets more context than the model was trained for (read from the
    model file, so only when validating with files: `config validate`)."""
    size, parallel = config.model.context_size, config.model.parallel
    if not size or any(arg.split("=")[0] in _ROPE_FLAGS for arg in config.args):
        return None  # unset, the model's own (0), or extended on purpose with RoPE scaling
    trained = gguf_file.facts(config.model.path).context_length
    # a unified KV cache (llama-server's default with automatic slots) lets one request use all of it
    unified = any(arg in ("--kv-unified", "-kvu") for arg in config.args)
    per_slot = size // parallel if parallel and parallel > 0 and not unified else size
    if not trained or per_slot <= trained:
        return None
    return (f"{per_slot} tokens per slot is more than the {trained} this model was trained for: llama-server "
            f"caps a request at {trained} (older builds let answers degrade past it) and the memory for the rest "
            "goes unused; lower context_size, raise parallel, or set RoPE scaling (--rope-scaling in args)")


def cpu_oversubscribed(
    instances: Mapping[str, InstanceConfig], files: Mapping[str, Path], cores: int
) -> list[ConfigProblem]:
    """Warn when CPU instances that may generate at once have more compute threads than `cores`.

    llama-server's threads spin while they wait for each other, so two CPU servers sharing cores
    slow each other down many times over (Gemma 3 270M on 2 cores: 60 tokens/s alone, 2 tokens/s
    with two instances of 2 threads each generating at once, 18 with 1 thread each). An unset
    `model.threads` (or -1) means llama-server's default: about one per core."""
    cpu = sorted(name for name, c in instances.items() if c.gpu.backend == "cpu")
    if len(cpu) < 2:
        return []
    threads = {name: t if (t := instances[name].model.threads) and t > 0 else cores for name in cpu}
    total = sum(threads.values())
    if total <= cores:
        return []
    share = max(1, cores // len(cpu))
    each = ", ".join(f"{name} {n}" for name, n in threads.items())
    return [ConfigProblem(
        str(files[cpu[0]]),
        "model.threads",
        f"CPU instances {', '.join(cpu)} use {total} threads together ({each}, unset = one per core) on {cores} "
        f"cores: generating at the same time they slow each other down many times over; set model.threads "
        f"so they add up to at most {cores} (e.g. {share} each)",
        severity="warning",
    )]


def beyond_budget(config: InstanceConfig, gateway: GatewayConfig) -> str | None:
    """A warning when an on-demand instance alone needs more than its memory pool's budget (its
    memory_gib, else the estimate from its model file): the gateway would refuse every start."""
    pool = footprint.pool_of(config)
    budget = gateway.memory_budgets.get(pool)
    if budget is None or not config.on_demand:
        return None
    if (given := footprint.declared(config)) is not None:
        need, how = given, f"its memory_gib is {config.memory_gib:g}"
    else:
        size, _ = gguf_file.size_and_mtime(config.model.path)
        estimate = footprint.estimate(config, gguf_file.facts(config.model.path), size)
        need, how = estimate.total, f"it is estimated at {estimate.describe()}"
    if need <= budget:
        return None
    return (f"{how}: more than gateway.{pool}_budget_gib={budget / footprint.GIB:g}, so the gateway will refuse "
            "to start it; raise the budget, lower model.context_size, or set memory_gib if it holds less")

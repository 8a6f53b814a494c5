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
    instances: Mapping[str, InstanceConfig], files: Mapping[str, Path], cores: int, max_loaded: int | None = None
) -> list[ConfigProblem]:
    """Warn when CPU instances that may generate at once have more compute threads than `cores`.

    llama-server's threads spin while they wait for each other, so two CPU servers sharing cores
    slow each other down many times over (Gemma 3 270M on 2 cores: 60 tokens/s alone, 2 tokens/s
    with two instances of 2 threads each generating at once, 18 with 1 thread each). An unset
    `model.threads` (or -1) means llama-server's default: about one per core. On-demand instances
    count only up to `max_loaded` (the gateway's limit, when it has one), those with the most
    threads: no more of them run at once."""
    cpu = [name for name, c in sorted(instances.items()) if c.gpu.backend == "cpu"]
    threads = {name: t if (t := instances[name].model.threads) and t > 0 else cores for name in cpu}
    on_demand = [name for name in cpu if instances[name].on_demand]
    running = on_demand
    if max_loaded is not None and len(on_demand) > max_loaded:  # the worst case: those with the most threads
        running = sorted(on_demand, key=lambda name: -threads[name])[:max_loaded]
    together = [name for name in cpu if name not in on_demand or name in running]
    if len(together) < 2:
        return []
    total = sum(threads[name] for name in together)
    if total <= cores:
        return []
    each = ", ".join(f"{name} {threads[name]}" for name in together) + ", unset = one per core"
    if len(running) < len(on_demand):
        each += (f"; gateway.max_loaded={max_loaded} runs at most {max_loaded} of the on-demand "
                 f"{', '.join(on_demand)} at once")
    if len(together) <= cores:
        advice = f"set model.threads so they add up to at most {cores} (e.g. {cores // len(together)} each)"
    else:
        advice = (f"{len(together)} instances at once are more than {cores} cores even at 1 thread each: run at "
                  f"most {cores} at once (make the others on_demand and limit them with gateway.max_loaded), "
                  f"with model.threads adding up to at most {cores}")
    return [ConfigProblem(
        str(files[together[0]]),
        "model.threads",
        f"CPU instances {', '.join(together)} use {total} threads together ({each}) on "
        f"{cores} cores: generating at the same time they slow each other down many times over; {advice}",
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

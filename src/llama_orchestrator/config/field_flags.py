"""The llama-server flags config.argv renders from a config field, so that `args` does not pass
them again: llama-server takes the last one, and then the command runs with a value that
`inspect`, the memory estimate and the config itself do not show."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from llama_orchestrator.config.models import InstanceConfig

#: (field, its flags with every alias llama-server knows, whether build_command renders it)
RENDERED: tuple[tuple[str, tuple[str, ...], Callable[[InstanceConfig], bool]], ...] = (
    ("model.context_size", ("-c", "--ctx-size"), lambda c: c.model.context_size is not None),
    ("model.batch_size", ("-b", "--batch-size"), lambda c: c.model.batch_size is not None),
    ("model.ubatch_size", ("-ub", "--ubatch-size"), lambda c: c.model.ubatch_size is not None),
    ("model.threads", ("-t", "--threads"), lambda c: c.model.threads is not None),
    ("model.parallel", ("-np", "--parallel"), lambda c: c.model.parallel is not None),
    ("model.embeddings", ("--embedding", "--embeddings"), lambda c: c.model.embeddings),
    ("model.chat_template", ("--chat-template",), lambda c: c.model.chat_template is not None),
    ("model.jinja", ("--jinja", "--no-jinja"), lambda c: c.model.jinja is not None),
    ("gpu.layers", ("-ngl", "--gpu-layers", "--n-gpu-layers"), lambda c: c.gpu.layers is not None),
    ("gpu.devices", ("-dev", "--device"), lambda c: c.gpu.devices is not None and c.gpu.backend != "cpu"),
    ("gpu.split_mode", ("-sm", "--split-mode"), lambda c: c.gpu.split_mode is not None),
    ("gpu.main_gpu", ("-mg", "--main-gpu"), lambda c: c.gpu.main_gpu is not None),
    ("gpu.tensor_split", ("-ts", "--tensor-split"), lambda c: c.gpu.tensor_split is not None),
    ("server.metrics", ("--metrics",), lambda c: c.server.metrics),
    ("server.timeout_s", ("-to", "--timeout"), lambda c: c.server.timeout_s is not None),
)


def duplicated_flags(config: InstanceConfig, args: Sequence[str], known: Callable[..., bool]) -> list[str]:
    """What to say of each flag in `args` that a set field (of those `known`) already renders."""
    given = {arg.split("=", 1)[0] for arg in args if arg.startswith("-")}
    found = []
    for field, flags, rendered in RENDERED:
        reads = (field, "gpu.backend") if field == "gpu.devices" else (field,)
        if known(*reads, "args") and rendered(config):
            for flag in (f for f in flags if f in given):
                found.append(f"{flag} is set by the orchestrator from {field}: remove it from args, and set "
                             f"{field} instead (llama-server would run with the last one)")
    return found

"""What `create` says of the instance it has written: warnings, never refusals (what `config
validate` or the start would say later is better heard while the options are still in mind)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from llama_orchestrator.config.loader import Fleet
    from llama_orchestrator.config.orchestrator import OrchestratorConfig
    from llama_orchestrator.config.paths import HomePaths
    from llama_orchestrator.errors import ConfigProblem


def new_warnings(paths: HomePaths, before: Fleet, said: frozenset[str]) -> list[ConfigProblem]:
    """The loader's warnings the new instance brings (a shared alias may land in another's file):
    those not there before it, but of the fields in `said`, which create has told its own way."""
    from llama_orchestrator.config.loader import load_fleet

    after = load_fleet(paths, offline=True)
    return [p for p in after.problems
            if p.severity == "warning" and p not in before.problems and p.field not in said]


def port_note(host: str, port: int) -> str | None:
    """Why llama-server could not bind host:port now, or None; only a warning, as whoever holds
    it may be gone by the start."""
    from llama_orchestrator.engine import port_holder

    fix = "the start will fail unless it is free by then; pick another --port, or leave --port out to get a free one"
    try:
        holder = port_holder(host, port)
    except OSError as exc:
        return f"{host}:{port} cannot be bound on this machine now ({exc.strerror or exc}): {fix}"
    if holder is None:
        return None
    who = f"pid {holder.pid} ({holder.name})" if holder.pid else "another process"
    return f"port-in-use: {host}:{port} is held by {who} now: {fix}"


def unchecked_note(raw: dict[str, Any], orchestrator: OrchestratorConfig) -> str | None:
    """What to say when no llama-server could be asked its flags, so the arguments went unchecked."""
    from llama_orchestrator.config.loader import unchecked_reason
    from llama_orchestrator.config.models import InstanceConfig
    from llama_orchestrator.engine.server_help import server_flags

    return unchecked_reason(InstanceConfig.model_validate(raw), orchestrator, server_flags)


def template_note(raw: dict[str, Any]) -> str | None:
    """What to say when the model holds no chat template and the new config gives none."""
    from llama_orchestrator import gguf_file
    from llama_orchestrator.config.chat_templates import missing_template

    path = raw["model"]["path"]
    args = [*raw.get("args", []), *(["--embeddings"] if raw["model"].get("embeddings") else [])]  # no chats
    return missing_template(gguf_file.metadata_keys(path), gguf_file.facts(path).architecture,
                            raw["model"].get("chat_template"), args)

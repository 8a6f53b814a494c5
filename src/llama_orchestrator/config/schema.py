"""JSON Schemas generated from the config models, so editors validate config files as users type."""

from __future__ import annotations

from typing import Any, Literal

from llama_orchestrator.config.models import InstanceConfig
from llama_orchestrator.config.orchestrator import OrchestratorConfig

SCHEMA_DIR = "schemas"
SCHEMA_REF = "../../schemas/instance.schema.json"


def json_schema(kind: Literal["instance", "orchestrator"]) -> dict[str, Any]:
    model = InstanceConfig if kind == "instance" else OrchestratorConfig
    schema = model.model_json_schema(by_alias=True, mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = f"llama-orchestrator {kind} config"
    return schema

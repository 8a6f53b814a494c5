"""Rules that judge several fields of a config together (preload needs on_demand, a variant needs a
name of its own, ...), each reporting at its own field.

pydantic runs a model's own validators only once all its fields are valid, so there a bad port
would hide these rules until fixed. The models still run them (`create` and every other caller
are refused a config that breaks one), but the loader validates with `CHECKED_APART` set in the
context and runs them itself over what is left of a config once its invalid fields are set aside
(config.partial), skipping each rule that reads a field set aside.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from pydantic import ValidationError, ValidationInfo
from pydantic_core import InitErrorDetails, PydanticCustomError

from llama_orchestrator.config.chat_templates import needs_legacy_path, template_problem, unknown_template
from llama_orchestrator.config.field_flags import duplicated_flags

if TYPE_CHECKING:
    from llama_orchestrator.config.models import InstanceConfig, RestartPolicy
    from llama_orchestrator.config.orchestrator import GatewayConfig, OrchestratorConfig

#: Validation context key: the caller runs these rules itself (config.partial).
CHECKED_APART = "rules_checked_apart"

Finding = tuple[str, str]  # (dotted field path, what is wrong and how to fix it)
Known = Callable[..., bool]  # known(*fields): whether each of them holds what the file says


def _everything(*fields: str) -> bool:
    return True


def checked_apart(info: ValidationInfo) -> bool:
    return bool(info.context and info.context.get(CHECKED_APART))


def refuse(model: str, findings: list[Finding]) -> None:
    """Raise every finding at once, each at its own field, as pydantic reports field errors."""
    if findings:
        raise ValidationError.from_exception_data(model, [
            InitErrorDetails(type=PydanticCustomError("value_error", message), loc=tuple(field.split(".")), input=None)
            for field, message in findings
        ])


def backoff_problem(policy: RestartPolicy) -> str | None:
    if policy.backoff_max_s < policy.backoff_initial_s:
        return "backoff_max_s must not be smaller than backoff_initial_s; raise it, or lower backoff_initial_s"
    return None


def tls_problem(gateway: GatewayConfig) -> str | None:
    if bool(gateway.tls_cert_file) != bool(gateway.tls_key_file):
        return "HTTPS needs both tls_cert_file and tls_key_file (or neither, for plain HTTP)"
    return None


def instance_findings(config: InstanceConfig, known: Known = _everything) -> list[Finding]:
    """What `config` breaks of the rules whose fields are all `known`."""
    found: list[Finding] = []
    if known("preload", "on_demand") and config.preload and not config.on_demand:
        found.append(("preload", "preload is for on_demand instances; without on_demand, autostart already "
                                  "starts it with `llama-orch up` (remove preload, or set on_demand: true)"))
    if known("idle_ttl_s", "on_demand") and config.idle_ttl_s is not None and not config.on_demand:
        found.append(("idle_ttl_s", "idle_ttl_s is for on_demand instances: one that is not on_demand, once stopped "
                                    "for being idle, is started again by no request, only by `llama-orch up` (set "
                                    "on_demand: true, or remove idle_ttl_s)"))
    # (an entry of model.aliases or variants set aside is left out of them, and cannot clash)
    if known("name", "model.alias"):
        taken = sorted(set(config.variants) & {config.name, config.served_name, *config.model.aliases})
        if taken:
            found.append(("variants", f"variant {', '.join(map(repr, taken))} is already a name of this instance "
                                      "(its name, model.alias or model.aliases), which routes here without the "
                                      "variant's filters: give the variant a name of its own"))
    model = config.model
    if known("model.chat_template") and (unknown := unknown_template(model.chat_template)):
        found.append(("model.chat_template", unknown))
    if known("model.chat_template", "model.jinja", "args"):
        problem = template_problem(model.chat_template, model.jinja, config.args)
        if problem:
            in_model = needs_legacy_path(model.chat_template) and (model.jinja or "--jinja" in config.args)
            found.append(("model.chat_template" if in_model else "args", problem))
    if duplicates := duplicated_flags(config, config.args, known):
        found.append(("args", "; ".join(duplicates)))
    if known("restart.backoff_initial_s", "restart.backoff_max_s") and (late := backoff_problem(config.restart)):
        found.append(("restart.backoff_max_s", late))
    return found


def orchestrator_findings(config: OrchestratorConfig, known: Known = _everything) -> list[Finding]:
    """What `config` breaks of the rules whose fields are all `known`."""
    if known("gateway.tls_cert_file", "gateway.tls_key_file") and (problem := tls_problem(config.gateway)):
        return [("gateway", problem)]
    return []
